"""Per-append latency of each external backend's driver, against the backend's plain write.

For Redis, ZooKeeper and DynamoDB (dynalite) the real server starts as in the tests
(tests/backends/launch_*.py); one driver appends sequentially. The peer, measured in the
same run on the same server through the same client library and thread hop, is the
cheapest single write the backend offers (SET, create, PutItem): the ratio is the driver's
cost of density and fencing. 16 tasks appending at once through one driver give its
throughput (group commit on Redis and ZooKeeper). The in-memory twin is the ceiling of the
loop itself.

Usage: python scripts/bench/backend_append.py [--appends 300] [--repeats 2]
                                              [--only redis,zookeeper,dynamodb]
"""

import argparse
import contextlib
import importlib
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import redis
import trio
from kazoo.client import KazooClient

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dkron_trio.backends.dynamodb_table import TABLE
from dkron_trio.backends.memory import MemoryBackend
from dkron_trio.backends.registry import driver_opener
from dkron_trio.store.backend import LogDriver

NAMES = ["redis", "zookeeper", "dynamodb"]


def _figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered) * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms  "
        f"max {ordered[-1] * 1000:7.2f} ms  {len(ordered) / sum(ordered):8.0f}/s"
    )


async def _timed(count: int, op: Callable[[int], Awaitable[object]]) -> list[float]:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        await op(i)
        samples.append(time.perf_counter() - start)
    return samples


@contextlib.contextmanager
def _plain_write(name: str, machines: list[str], namespace: str) -> Iterator[Callable[[int], Any]]:
    """The backend's cheapest write through the same client library as the driver."""
    host, port = machines[0].rsplit(":", 1)
    if name == "redis":
        client: Any = redis.Redis(host=host, port=int(port))
        yield lambda i: client.set(f"bench:{namespace}:{i}", b"x" * 64)
    elif name == "zookeeper":
        client = KazooClient(hosts=machines[0])
        client.start(timeout=10)
        client.ensure_path(f"/bench-{namespace}")
        yield lambda i: client.create(f"/bench-{namespace}/{i}", b"x" * 64)
        client.stop()
    else:
        client = boto3.session.Session(
            aws_access_key_id="bench", aws_secret_access_key="bench", region_name="us-east-1"
        ).client("dynamodb", endpoint_url=f"http://{machines[0]}")
        item = {"ns": {"S": f"bench-{namespace}"}, "data": {"B": b"x" * 64}}
        yield lambda i: client.put_item(TableName=TABLE, Item={**item, "key": {"S": str(i)}})
    client.close()


async def _appends(driver: LogDriver, count: int, fenced: bool) -> list[float]:
    lease = await driver.campaign("bench", 30) if fenced else None
    samples = await _timed(count, lambda i: driver.append(b"x" * 64, fence=lease))
    if lease is not None:
        await driver.resign(lease)
    return samples


async def _concurrent(driver: LogDriver, writers: int, each: int) -> float:
    """Appends per second with ``writers`` tasks appending at once through one driver."""
    start = time.perf_counter()

    async def writer() -> None:
        for _ in range(each):
            await driver.append(b"x" * 64)

    async with trio.open_nursery() as nursery:
        for _ in range(writers):
            nursery.start_soon(writer)
    return writers * each / (time.perf_counter() - start)


async def _plain(write: Callable[[int], Any], count: int) -> list[float]:
    await trio.to_thread.run_sync(write, -1)
    return await _timed(count, lambda i: trio.to_thread.run_sync(write, i))


async def _measure(name: str, machines: list[str], appends: int, repeats: int) -> None:
    for repeat in range(1, repeats + 1):
        namespace = f"bench{repeat}-{os.getpid()}"
        driver: LogDriver = driver_opener(name)(machines, namespace)
        await driver.append(b"warm-up")
        with _plain_write(name, machines, namespace) as write:
            raw = await _plain(write, appends)
        unfenced = await _appends(driver, appends, fenced=False)
        fenced = await _appends(driver, appends, fenced=True)
        rate = await _concurrent(driver, 16, max(1, appends // 16))
        await driver.aclose()
        ratio = statistics.median(unfenced) / statistics.median(raw)
        print(f"{name:10} repeat {repeat}  plain write    {_figures(raw)}")
        print(f"{name:10} repeat {repeat}  append         {_figures(unfenced)}")
        print(f"{name:10} repeat {repeat}  fenced append  {_figures(fenced)}")
        print(f"{name:10} repeat {repeat}  16 concurrent appenders: {rate:.0f} appends/s")
        print(f"{name:10} repeat {repeat}  append p50 / plain write p50 = {ratio:.2f}")


async def _ceiling(appends: int, repeats: int) -> None:
    for repeat in range(1, repeats + 1):
        samples = await _appends(MemoryBackend().driver(), appends, fenced=False)
        print(f"{'memory':10} repeat {repeat}  append         {_figures(samples)}")


@contextlib.contextmanager
def _server(name: str, tmp: Path) -> Iterator[list[str]]:
    launcher = importlib.import_module(f"tests.backends.launch_{name}")
    with launcher.running(tmp) as machines:
        yield machines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", default=",".join(NAMES))
    args = parser.parse_args()
    print(
        f"machine: {platform.system()} {platform.release()}, nproc {os.cpu_count()}, "
        f"Python {platform.python_version()}; {args.appends} sequential appends of 64 bytes"
    )
    await _ceiling(args.appends, args.repeats)
    for name in args.only.split(","):
        with tempfile.TemporaryDirectory() as tmp, _server(name, Path(tmp)) as machines:
            await _measure(name, machines, args.appends, args.repeats)


if __name__ == "__main__":
    trio.run(main)
