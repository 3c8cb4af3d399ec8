"""Gossip failure detection in simulation: detection time and false deaths by cluster size.

    python scripts/bench/gossip.py                 # 10, 50 and 200 nodes
    python scripts/bench/gossip.py --seeds 20 --sizes 50

Each run: 10% packet loss, one member stalls for 3 s and another crashes at the same moment.
Reported per size over the seeds: the time until every member has marked the crashed one
failed (p50 / p99 / max), healthy members declared failed (false deaths, counted per observer),
datagrams per member per second, and simulation speed. The peer is the same protocol with
memberlist's own retransmit multiplier (4, ours is 6), run on the same seeds in the same
process; the ratio column is ours / peer.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time

import attrs

from dkron_trio.gossip.config import GossipConfig
from dkron_trio.gossip.swim_types import EventKind
from dkron_trio.sim.gossip_cluster import GossipCluster, sim_name
from dkron_trio.sim.network import LinkConditions

FAULT_MS = 500
STALL_MS = 3000


@attrs.frozen
class Run:
    detection_ms: int | None
    false_deaths: int
    datagrams: int
    wall_s: float


def run_once(size: int, seed: int, config: GossipConfig, end_ms: int) -> Run:
    began = time.perf_counter()
    cluster = GossipCluster.build(
        size,
        random.Random(seed),
        config=config,
        conditions=LinkConditions(drop=0.1),
        formed=True,
    )
    cluster.run_until(FAULT_MS)
    cluster.stall(1, FAULT_MS, STALL_MS)
    cluster.crash(2)
    cluster.run_until(end_ms)
    failed = cluster.events(EventKind.FAILED)
    marks = {e.observer: e.time for e in failed if e.member == sim_name(2)}
    complete = len(marks) == size - 1
    return Run(
        max(marks.values()) - FAULT_MS if complete else None,
        sum(1 for e in failed if e.member != sim_name(2)),
        cluster.loop.deliveries,
        time.perf_counter() - began,
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


@attrs.frozen
class Summary:
    p50: float
    p99: float
    worst: float
    undetected: int
    false_deaths: int
    rate: float
    """Datagrams per member per simulated second."""
    speed: float
    """Simulated node-seconds per wall second."""


def summarise(runs: list[Run], size: int, end_ms: int) -> Summary:
    times = [r.detection_ms / 1000 for r in runs if r.detection_ms is not None]
    undetected = sum(1 for r in runs if r.detection_ms is None)
    nan = float("nan")
    return Summary(
        pct(times, 0.5) if times else nan,
        pct(times, 0.99) if times else nan,
        max(times) if times else nan,
        undetected,
        sum(r.false_deaths for r in runs),
        sum(r.datagrams for r in runs) / len(runs) / size / (end_ms / 1000),
        size * end_ms / 1000 * len(runs) / sum(r.wall_s for r in runs),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--seeds", type=int, default=None, help="runs per size")
    args = parser.parse_args(argv)
    print(f"python {platform.python_version()} on {platform.platform()}, nproc {os.cpu_count()}")
    print("scenario: 10% loss, 1 member stalled 3 s, 1 crashed; times in simulated seconds")
    ours, peer = GossipConfig(), GossipConfig(retransmit_mult=4)
    header = (
        f"{'nodes':>5} {'config':<13} {'seeds':>5} {'p50':>6} {'p99':>6} {'max':>6} "
        f"{'undet':>5} {'false':>5} {'dgram/s':>8} {'node-s/s':>9}"
    )
    print(header)
    for size in args.sizes:
        seeds = args.seeds or {10: 100, 50: 100}.get(size, 8)
        end_ms = 20_000 if size <= 50 else 25_000
        results: dict[str, Summary] = {}
        for label, config in (("ours (x6)", ours), ("memberlist x4", peer)):
            runs = [run_once(size, seed, config, end_ms) for seed in range(seeds)]
            s = results[label] = summarise(runs, size, end_ms)
            print(
                f"{size:>5} {label:<13} {seeds:>5} {s.p50:>6.2f} {s.p99:>6.2f} {s.worst:>6.2f} "
                f"{s.undetected:>5} {s.false_deaths:>5} {s.rate:>8.1f} {s.speed:>9.0f}",
                flush=True,
            )
        a, b = results["ours (x6)"], results["memberlist x4"]
        print(
            f"{size:>5} ratio ours/peer: detection p99 {a.p99 / b.p99:.2f}, "
            f"datagrams {a.rate / b.rate:.2f}, false deaths {a.false_deaths} vs {b.false_deaths}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
