"""Distributed runs benchmark: 3 servers + 2 agents on 127.0.0.1, N jobs ``@every 10s`` spread
evenly over the 10 s, each run on one agent (``kind: worker:1``) with a no-op executor
registered only here (scripts/bench/noop_agent.py), for a window; then the same window again
with the leader killed once (kill -9) a third of the way in.

Prints, per window: runs/s sustained (runs scheduled in the window / its length), start
lateness p50/p99/max (when the executor ran on its agent, minus the tick), duplicate attempts
and ticks with neither an execution nor a missed-tick record (`dkron_trio.run_checks`; if any,
again once those still in flight had up to a minute to be recorded), and for
the failover window the longest gap between consecutive run starts around the kill. Targets (issue
"Distributed execution"): 1,000 runs/s, p99 <= 100 ms outside the failover, 0 duplicates,
0 unexplained misses. The peer line is the same load on one single server that runs every
job itself (no dispatch, no replication beyond its own log).

Usage: python scripts/bench/cluster_runs.py [--jobs 1000] [--seconds 60] [--skip-failover]
       [--skip-peer] [--keep DIR]
"""

import argparse
import itertools
import os
import platform
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import attrs
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dkron_trio.commands import SetJob, encode_command
from dkron_trio.config import HostPort
from dkron_trio.execution import Execution
from dkron_trio.executors.registry import register_executor
from dkron_trio.job import Job
from dkron_trio.rpc.config import Overflow, RpcConfig
from dkron_trio.rpc.peer import Peer
from dkron_trio.run_checks import ViolationKind, check_runs
from dkron_trio.store.base import ExecutionQuery, JobQuery
from dkron_trio.store.sqlite import open_sqlite_store
from tests.e2e.cluster import Cluster, leader_of, wait_for_leader
from tests.e2e.process import AgentProcess, free_port, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noop_agent import NoopExecutor

LAUNCHER = (str(Path(__file__).with_name("noop_agent.py")),)
PERIOD = 10.0
RPC = RpcConfig(queue_size=4096, overflow=Overflow.BLOCK, call_timeout=60.0)


@attrs.frozen
class Window:
    name: str
    runs: int
    seconds: float
    lateness: list[float]
    duplicates: int
    unexplained: int
    gap: float

    @property
    def rate(self) -> float:
        return self.runs / self.seconds

    def line(self) -> str:
        late = sorted(self.lateness) or [0.0]

        def pct(q: float) -> float:
            return late[min(len(late) - 1, int(q * len(late)))] * 1e3

        return (
            f"  {self.name:<34} {self.rate:8.1f} runs/s  lateness p50 {pct(0.5):8.1f}"
            f" ms  p99 {pct(0.99):8.1f} ms  max {late[-1] * 1e3:8.1f} ms  duplicates"
            f" {self.duplicates}  unexplained {self.unexplained}  longest gap {self.gap:5.2f} s"
        )


def _job(i: int, jobs: int, base: datetime, tags: dict[str, str]) -> Job:
    start = base + timedelta(seconds=PERIOD * i / jobs)
    body = {
        "name": f"bench-{i:06d}",
        "schedule": f"@every {PERIOD:g}s",
        "executor": "noop",
        "starts_at": start.isoformat().replace("+00:00", "Z"),
        "tags": tags,
    }
    return Job.from_json(body, now=datetime.now(UTC))


async def create_jobs(rpc_port: int, jobs: int, base: datetime, tags: dict[str, str]) -> None:
    """Through the leader's RPC port ("apply"), 64 at a time (the HTTP API is slower)."""
    peer = Peer(HostPort("127.0.0.1", rpc_port), RPC, random.Random(0))
    numbers = iter(range(jobs))
    async with trio.open_nursery() as nursery:
        await nursery.start(peer.run)

        async def worker() -> None:
            for i in numbers:
                await peer.call("apply", encode_command(SetJob(_job(i, jobs, base, tags))))

        async with trio.open_nursery() as workers:
            for _ in range(64):
                workers.start_soon(worker)
        nursery.cancel_scope.cancel()


def ran_at(execution: Execution) -> datetime:
    """When the no-op executor ran (its output, noop_agent.py), else the recorded start."""
    output = execution.output.strip()
    if output.isdigit():
        return datetime.fromtimestamp(int(output) / 1e9, UTC)
    return execution.started_at


async def measure(
    name: str, state_db: Path, start: datetime, end: datetime, kill_at: datetime | None
) -> Window:
    lateness: list[float] = []
    starts: list[datetime] = []
    duplicates = unexplained = runs = 0
    async with open_sqlite_store(state_db) as store:
        for job in (await store.list_jobs(JobQuery())).jobs:
            executions = await store.list_executions(job.name, ExecutionQuery())
            missed = await store.list_missed(job.name, 1000)
            for e in executions:
                if e.scheduled_at is not None and start <= e.scheduled_at < end:
                    runs += 1
                    ran = ran_at(e)
                    lateness.append((ran - e.scheduled_at).total_seconds())
                    starts.append(ran)
            for v in check_runs(job, executions, missed, until=end, max_targets=1):
                if v.kind is ViolationKind.DUPLICATE:
                    duplicates += 1
                elif v.scheduled_at >= start:
                    unexplained += 1
    starts.sort()
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    if kill_at is not None:
        near = [
            (b - a).total_seconds()
            for a, b in itertools.pairwise(starts)
            if a - timedelta(seconds=30) <= kill_at <= b + timedelta(seconds=30)
        ]
        gaps = near or gaps
    seconds = (end - start).total_seconds()
    return Window(name, runs, seconds, lateness, duplicates, unexplained, max(gaps, default=0))


CREATES_PER_SECOND = 100
"""A low estimate of job creations per second: the jobs start once all of them are
created, so a window measures the steady state, not creation and runs together."""

DRAIN = 60.0
"""Seconds the bench waits, after a window, for its ticks still in flight to be recorded."""


async def drained(window: Window, state_db: Path, start: datetime, end: datetime) -> None:
    """A tick of the window a loaded cluster still had in flight when it was measured (late,
    planned or running) is not a miss: look again every 10 s, up to `DRAIN`, and print how
    many remain unexplained then (the window's rate and lateness stay as measured)."""
    began = time.monotonic()
    unexplained = window.unexplained
    while unexplained and time.monotonic() - began < DRAIN:
        await trio.sleep(10)
        unexplained = (await measure(window.name, state_db, start, end, None)).unexplained
    if window.unexplained:
        print(
            f"  {time.monotonic() - began:.0f} s later: unexplained {unexplained}"
            f" (the others were still in flight)",
            flush=True,
        )


def cpu_seconds(process: AgentProcess) -> float:
    """User + system CPU time the process has used so far (Linux /proc)."""
    pid = process.pid
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def steady(
    args: argparse.Namespace,
    leader: AgentProcess,
    tags: dict[str, str],
    name: str,
    processes: list[AgentProcess],
) -> Window:
    began = time.monotonic()
    base = datetime.now(UTC) + timedelta(seconds=5 + args.jobs / CREATES_PER_SECOND)
    await create_jobs(leader.rpc_port, args.jobs, base, tags)
    print(f"  created {args.jobs} jobs in {time.monotonic() - began:.1f} s", flush=True)
    if datetime.now(UTC) > base:
        print("  (creation outlasted the jobs' start: the first ones ran meanwhile)")
    start = max(datetime.now(UTC), base) + timedelta(seconds=PERIOD)
    end = start + timedelta(seconds=args.seconds)
    await trio.sleep((start - datetime.now(UTC)).total_seconds())
    cpu_before = {p.node_name: cpu_seconds(p) for p in processes}
    await trio.sleep((end - datetime.now(UTC)).total_seconds())
    cpu = {p.node_name: cpu_seconds(p) - cpu_before[p.node_name] for p in processes}
    await trio.sleep(5)
    window = await measure(name, leader.data_dir / "state.db", start, end, None)
    print(window.line(), flush=True)
    if window.runs:
        per_run = "  ".join(
            f"{n}{'*' if n == leader.node_name else ''} {c * 1e3 / window.runs:.2f}"
            for n, c in sorted(cpu.items())
        )
        total = sum(cpu.values()) * 1e3 / window.runs
        print(f"  CPU ms per run (* leader): {per_run}  all {total:.2f}", flush=True)
    await drained(window, leader.data_dir / "state.db", start, end)
    return window


async def single_server(args: argparse.Namespace, root: Path) -> Window:
    """The peer: one server running every job itself (no dispatch, a one-node log)."""
    server = AgentProcess(root / "single" / "dkron.data", free_port(), node_name="single")
    server.entry = LAUNCHER
    server.start()
    try:
        await wait_for_leader([server], within=60)
        return await steady(args, server, {}, "one server, runs local (peer)", [server])
    finally:
        server.stop_quietly()


async def run(args: argparse.Namespace, root: Path) -> None:
    peer = None if args.skip_peer else await single_server(args, root)
    cluster = Cluster.create(root, 3)
    workers = [
        AgentProcess(root / n / "dkron.data", free_port(), node_name=n, server=False)
        for n in ("w1", "w2")
    ]
    for process in [*cluster.servers, *workers]:
        process.entry = LAUNCHER
    for w in workers:
        w.extra_args = ("--join", cluster.servers[0].gossip_address, "--tag", "kind=worker")
    cluster.start()
    for w in workers:
        w.start()
    try:
        leader = cluster.by_name(await wait_for_leader(cluster.servers, within=60))
        window = await steady(
            args, leader, {"kind": "worker:1"}, "3 servers + 2 agents", [*cluster.servers, *workers]
        )
        if peer is not None:
            print(f"  ratio runs/s cluster / one server: {window.rate / max(peer.rate, 1e-9):.2f}x")
        if args.skip_failover:
            return
        start = datetime.now(UTC)
        end = start + timedelta(seconds=args.seconds)
        await trio.sleep(args.seconds / 3)
        killed_at = datetime.now(UTC)
        leader.kill()
        survivors = [s for s in cluster if s is not leader]

        async def new_leader() -> bool:
            return await leader_of(survivors) is not None

        await wait_for(new_leader, within=60, what="a new leader")
        elected = (datetime.now(UTC) - killed_at).total_seconds()
        print(f"  leader killed; new leader after {elected:.2f} s")
        await trio.sleep((end - datetime.now(UTC)).total_seconds() + 5)
        state_db = survivors[0].data_dir / "state.db"
        window = await measure("leader killed once", state_db, start, end, killed_at)
        print(window.line())
        await drained(window, state_db, start, end)
    finally:
        for w in workers:
            w.stop_quietly()
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--skip-failover", action="store_true")
    parser.add_argument("--keep", type=Path, help="run in this directory and keep it (logs)")
    parser.add_argument("--skip-peer", action="store_true", help="no single-server line (no ratio)")
    args = parser.parse_args()
    register_executor("noop", NoopExecutor)  # the jobs built here name it, as servers do
    print(
        f"machine: nproc={os.cpu_count()}, python {platform.python_version()}, "
        f"{platform.platform()}"
    )
    print(f"== {args.jobs} jobs @every {PERIOD:g}s = {args.jobs / PERIOD:.0f} runs/s offered")
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        trio.run(run, args, args.keep)
    else:
        with TemporaryDirectory() as tmp:
            trio.run(run, args, Path(tmp))
    print("targets: 1,000 runs/s; p99 lateness <= 100 ms outside the failover; 0 duplicates;")
    print("         0 unexplained misses")


if __name__ == "__main__":
    main()
