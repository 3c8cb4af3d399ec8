"""Writes through an etcd backend against the embedded Raft, measured in the same run.

Three paths, each a `ReplicatedStore.set_job` (or the raw write) awaited until it is applied
on the writing server, with a SQLite `state.db` as the agent has:

- ``raft``: a one-server embedded Raft cluster (RaftServer, `raft.db` + `state.db`);
- ``etcd backend``: a BackendServer over a real etcd 3.4 (Debian's etcd-server, one member
  started here on 127.0.0.1): one etcd transaction per write, then the tail applies it;
- ``etcd put``: a bare `/v3/kv/put` through the same gateway (the floor under the backend).

Sequential writes give latency p50/p99/max; 16 concurrent writers give throughput. The
ratios etcd backend / raft and etcd backend / etcd put are printed per repeat.

    .venv/bin/python scripts/bench/backend_writes.py [--writes 300] [--repeats 3]
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dkron_trio.backends.etcd import open_driver
from dkron_trio.backends.server import BackendServer
from dkron_trio.cluster.config import ClusterConfig
from dkron_trio.cluster.replicated import ReplicatedStore
from dkron_trio.cluster.server import RaftServer
from dkron_trio.config import HostPort
from dkron_trio.job import Job
from dkron_trio.store.sqlite import open_sqlite_store
from tests.backends.launch_etcd import running

CONCURRENCY = 16
Write = Callable[[int], Awaitable[None]]


def _job(n: int) -> Job:
    return Job(name=f"bench-{n}", schedule="@every 1h", executor="shell",
               executor_config={"command": "true"})  # fmt: skip


def _config(name: str, data_dir: Path) -> ClusterConfig:
    address = HostPort("127.0.0.1", 0)
    return ClusterConfig(node_name=name, data_dir=data_dir, rpc_bind=address, advertise=address)


async def _leading(server: RaftServer | BackendServer, nursery: trio.Nursery) -> None:
    """Return once ``server`` leads (its leader's work has started)."""
    led = trio.Event()

    async def work() -> None:
        led.set()
        await trio.sleep_forever()

    nursery.start_soon(server.lead, work)
    await led.wait()


@asynccontextmanager
async def raft_writes(root: Path) -> AsyncIterator[Write]:
    root.mkdir()
    async with open_sqlite_store(root / "state.db") as local, trio.open_nursery() as nursery:
        server = RaftServer(_config("r1", root), local)
        await nursery.start(server.run)
        await _leading(server, nursery)
        store = ReplicatedStore(local, server.command_log)

        async def write(n: int) -> None:
            await store.set_job(_job(n))

        yield write
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def backend_writes(root: Path, machines: list[str], space: str) -> AsyncIterator[Write]:
    root.mkdir()
    async with open_sqlite_store(root / "state.db") as local, trio.open_nursery() as nursery:
        server = BackendServer(_config("b1", root), local, open_driver(machines, space))
        await nursery.start(server.run)
        await _leading(server, nursery)
        store = ReplicatedStore(local, server.command_log)

        async def write(n: int) -> None:
            await store.set_job(_job(n))

        yield write
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def etcd_puts(machines: list[str], space: str) -> AsyncIterator[Write]:
    async with httpx.AsyncClient(base_url=f"http://{machines[0]}") as client:

        async def write(n: int) -> None:
            key = base64.b64encode(f"/{space}/{n}".encode()).decode()
            value = base64.b64encode(_job(n).name.encode() * 20).decode()
            response = await client.post("/v3/kv/put", json={"key": key, "value": value})
            response.raise_for_status()

        yield write


async def measure(write: Write, writes: int, start: int) -> tuple[list[float], float]:
    """Latencies (ms) of ``writes`` sequential writes, then writes/s with CONCURRENCY."""
    latencies = []
    for n in range(writes):
        t0 = trio.current_time()
        await write(start + n)
        latencies.append((trio.current_time() - t0) * 1000)
    counter = iter(range(start + writes, start + 2 * writes))
    t0 = trio.current_time()

    async def writer() -> None:
        for n in counter:
            await write(n)

    async with trio.open_nursery() as nursery:
        for _ in range(CONCURRENCY):
            nursery.start_soon(writer)
    return latencies, writes / (trio.current_time() - t0)


def _line(name: str, latencies: list[float], rate: float) -> str:
    q = statistics.quantiles(latencies, n=100)
    return (
        f"  {name:13} p50 {q[49]:7.2f} ms  p99 {q[98]:7.2f} ms  max {max(latencies):7.2f} ms"
        f"  | {CONCURRENCY} writers: {rate:8.0f} writes/s"
    )


async def main(writes: int, repeats: int, machines: list[str], tmp: Path) -> None:
    print(f"nproc {os.cpu_count()}, python {platform.python_version()}, {platform.machine()}")
    print(f"{writes} sequential + {writes} concurrent writes per path, {repeats} repeats")
    for repeat in range(1, repeats + 1):
        results = {}
        async with raft_writes(tmp / f"raft{repeat}") as write:
            results["raft"] = await measure(write, writes, 0)
        async with backend_writes(tmp / f"etcd{repeat}", machines, f"bench{repeat}") as write:
            results["etcd backend"] = await measure(write, writes, 0)
        async with etcd_puts(machines, f"raw{repeat}") as write:
            results["etcd put"] = await measure(write, writes, 0)
        print(f"repeat {repeat}")
        for name, (latencies, rate) in results.items():
            print(_line(name, latencies, rate))
        raft, backend, put = (statistics.median(results[k][0]) for k in results)
        rates = {k: v[1] for k, v in results.items()}
        print(
            f"  ratio etcd backend / raft: p50 latency x{backend / raft:.2f}, throughput "
            f"x{rates['etcd backend'] / rates['raft']:.2f}; etcd backend / etcd put: p50 "
            f"x{backend / put:.2f}, throughput x{rates['etcd backend'] / rates['etcd put']:.2f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        try:
            with running(tmp) as machines:
                trio.run(main, args.writes, args.repeats, machines, tmp)
        except RuntimeError as exc:
            sys.exit(f"backend_writes: {exc}")
