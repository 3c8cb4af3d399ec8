"""Throughput of the pure Raft core: a 3-node cluster in one process.

Memory storage, messages handed directly from one core to another (no codec, no sockets,
no fsync), 256-byte proposals with a window of outstanding proposals. Prints commits/s,
mean batch size (entries per APPEND carrying entries) and propose-to-apply latency on the
leader, for each repeat.

There is no in-process peer to compare with (PySyncObj and etcd need processes and
sockets), so the baseline is trivial and measured in the same run: encoding and decoding,
with the raft codec, exactly the messages the cluster exchanged. The ratio says how many
times more the whole consensus work (elections aside: log, progress, quorum, Ready
bookkeeping) costs than merely serialising its traffic once. Well under 1 would mean the
codec dominates; far above it, the core's bookkeeping does.

    .venv/bin/python scripts/bench/raft_core.py [--proposals 20000] [--window 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time

from dkron_trio.raft import codec
from dkron_trio.raft.core import RaftCore
from dkron_trio.raft.storage import MemoryRaftStorage
from dkron_trio.raft.types import ConfState, Message, MessageType, RaftConfig, Role

PAYLOAD = 256


class Cluster:
    def __init__(self, size: int, config: RaftConfig, seed: int) -> None:
        conf = ConfState(frozenset(range(1, size + 1)))
        self.storages = {i: MemoryRaftStorage(conf) for i in conf.voters}
        self.cores = {
            i: RaftCore(i, s, config, random.Random(seed + i)) for i, s in self.storages.items()
        }
        self.queue: list[Message] = []
        self.sent: list[Message] = []
        self.applied_at: dict[int, float] = {}

    def pump(self, record: bool) -> None:
        """One round: every node handles its Ready, then every message is delivered."""
        for node, core in self.cores.items():
            if not core.has_ready():
                continue
            rd = core.ready()
            self.storages[node].save(rd)
            self.queue.extend(rd.messages)
            if record:
                self.sent.extend(rd.messages)
                if node == 1:
                    now = time.perf_counter()
                    for e in rd.committed_entries:
                        if e.data:
                            self.applied_at[e.index] = now
            core.advance(rd)
        queue, self.queue = self.queue, []
        for m in queue:
            self.cores[m.to].step(m)


def run(proposals: int, window: int, seed: int) -> dict[str, float]:
    cluster = Cluster(3, RaftConfig(), seed)
    leader = cluster.cores[1]
    leader.campaign()
    while leader.role is not Role.LEADER or leader.has_ready():
        cluster.pump(record=False)
    payload = b"x" * PAYLOAD
    proposed_at: dict[int, float] = {}
    start = time.perf_counter()
    while len(cluster.applied_at) < proposals:
        while len(proposed_at) < proposals and len(proposed_at) - len(cluster.applied_at) < window:
            proposed_at[leader.propose(payload)] = time.perf_counter()
        cluster.pump(record=True)
    elapsed = time.perf_counter() - start
    appends = [m for m in cluster.sent if m.type is MessageType.APPEND and m.entries]
    latencies = sorted(cluster.applied_at[i] - t for i, t in proposed_at.items())
    # The trivial baseline: serialise and parse the same traffic once.
    codec_start = time.perf_counter()
    for m in cluster.sent:
        codec.decode_message(codec.encode_message(m))
    codec_elapsed = time.perf_counter() - codec_start
    return {
        "commits_per_s": proposals / elapsed,
        "batch": statistics.fmean(len(m.entries) for m in appends),
        "messages": len(cluster.sent),
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
        "max_ms": latencies[-1] * 1e3,
        "codec_per_s": proposals / codec_elapsed,
        "ratio": elapsed / codec_elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proposals", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=256, help="outstanding proposals")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"machine: nproc={os.cpu_count()} python={platform.python_version()} "
        f"{platform.machine()} {platform.system()}"
    )
    print(
        f"3 nodes, memory storage, direct delivery, {PAYLOAD}-byte proposals, "
        f"{args.proposals} proposals, window {args.window}"
    )
    rows = []
    for repeat in range(1, args.repeats + 1):
        r = run(args.proposals, args.window, seed=repeat)
        rows.append(r)
        print(
            f"repeat {repeat}: {r['commits_per_s']:,.0f} commits/s, "
            f"mean batch {r['batch']:.1f} entries/append, {r['messages']:.0f} messages, "
            f"latency p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms max {r['max_ms']:.2f} ms; "
            f"baseline codec-only {r['codec_per_s']:,.0f} commits/s, "
            f"core/codec time ratio {r['ratio']:.2f}"
        )
    print(
        "ratio = time of the whole in-process consensus run / time to encode+decode its "
        f"messages once; median over repeats {statistics.median(r['ratio'] for r in rows):.2f}"
    )


if __name__ == "__main__":
    main()
