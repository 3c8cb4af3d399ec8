"""UI benchmark: server time of the jobs list page (and the dashboard) with 100,000 jobs.

Usage: python scripts/bench/ui.py [--jobs 100000] [--repeats 2] [--samples 20] [--db PATH]

The app is the real one (`create_app`) over a `SqliteStore` holding the jobs, called
in-process through Quart's test client, so the figure is the server's own time for a page:
the store query, `next` for each job, the template — no socket, no browser. Measured in the
same run with the same client:

1. the client's ceiling: ``GET /health`` (a route that does nothing);
2. the peer: the JSON API's ``GET /v1/jobs`` for the same page and filters;
3. the UI's ``GET /ui/jobs`` for the first page, a deep page, other sorts and each filter,
   and ``GET /ui/`` (the dashboard counts every status).

``--db`` keeps the filled database between runs (filling 100,000 jobs takes a while).
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio
from quart.typing import TestClientProtocol

from dkron_trio.clock import WallClock
from dkron_trio.http.app import create_app
from dkron_trio.http.context import ApiDeps, Member, SingleNodeCluster
from dkron_trio.job import Job, JobStatus
from dkron_trio.runs import RunManager
from dkron_trio.scheduler import Scheduler
from dkron_trio.store.base import JobQuery
from dkron_trio.store.sqlite import SqliteStore, open_sqlite_store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NODE = "bench"
FILL_TASKS = 64
SCHEDULES = ("@every 1m", "0 */5 * * * *", "0 30 2 * * *", "@daily", "@manually")
STATUSES = (JobStatus.SUCCESS, JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.UNTRIGGERED)

CASES = (
    ("first page (50, by name)", "/ui/jobs", "/v1/jobs?_start=0&_end=50"),
    ("page 1000 of 2000", "/ui/jobs?page=1000", "/v1/jobs?_start=49950&_end=50000"),
    (
        "sorted by next, desc",
        "/ui/jobs?sort=next&order=desc",
        "/v1/jobs?_sort=next&_order=DESC&_start=0&_end=50",
    ),
    ("status=failed", "/ui/jobs?status=failed", "/v1/jobs?status=failed&_start=0&_end=50"),
    (
        "metadata team=t7",
        "/ui/jobs?meta=team%3Dt7",
        "/v1/jobs?metadata%5Bteam%5D=t7&_start=0&_end=50",
    ),
    ("search q=job-0999", "/ui/jobs?q=job-0999", "/v1/jobs?q=job-0999&_start=0&_end=50"),
    ("200 per page", "/ui/jobs?per_page=200", "/v1/jobs?_start=0&_end=200"),
)


def _job(index: int) -> Job:
    status = STATUSES[index % len(STATUSES)]
    failed = status is JobStatus.FAILED
    return Job.from_json(
        {
            "name": f"job-{index:06d}",
            "displayname": f"Job number {index}",
            "schedule": SCHEDULES[index % len(SCHEDULES)],
            "timezone": "Europe/Berlin" if index % 3 == 0 else "",
            "executor": "shell",
            "executor_config": {"command": "true"},
            "metadata": {"team": f"t{index % 50}"},
            "status": status.value,
            "error_count": 1 if failed else 0,
            "last_error": (T0 + timedelta(seconds=index)).isoformat() if failed else "",
        },
        now=T0,
    )


async def _fill(store: SqliteStore, total: int) -> None:
    have = (await store.list_jobs(JobQuery(end=0))).total
    if have >= total:
        print(f"store already holds {have} jobs")
        return
    started = time.perf_counter()
    send, receive = trio.open_memory_channel[int](FILL_TASKS)

    async def produce() -> None:
        async with send:
            for index in range(have, total):
                await send.send(index)

    async def consume() -> None:
        async for index in receive:
            await store.set_job(_job(index))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce)
        for _ in range(FILL_TASKS):
            nursery.start_soon(consume)
    print(f"stored {total - have} jobs in {time.perf_counter() - started:.1f} s")


def _stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
        f"max {ordered[-1] * 1000:7.1f} ms"
    )


async def _measure(client: TestClientProtocol, path: str, samples: int) -> list[float]:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        response = await client.get(path)
        await response.get_data()
        times.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}")
    return times


async def main(args: argparse.Namespace) -> None:
    print(f"nproc {os.cpu_count()}, python {platform.python_version()}, {platform.machine()}")
    db = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="bench-ui-")) / "state.db"
    async with open_sqlite_store(db) as store:
        await _fill(store, args.jobs)
        clock = WallClock.starting_at(T0)
        runs = RunManager(store, clock, NODE, {})
        deps = ApiDeps(
            store=store,
            runs=runs,
            scheduler=Scheduler(store, runs, clock),
            clock=clock,
            cluster=SingleNodeCluster(Member(NODE, "127.0.0.1", 8946, {})),
            node_name=NODE,
            version="bench",
            node_tags={},
            request_leave=lambda: None,
        )
        client = create_app(deps).test_client()
        total = (await store.list_jobs(JobQuery(end=0))).total
        print(f"{total} jobs stored; {args.samples} requests per figure, in-process test client")
        for repeat in range(1, args.repeats + 1):
            print(f"\n--- repeat {repeat}")
            ceiling = await _measure(client, "/health", args.samples)
            print(f"{'client ceiling GET /health':42s} {_stats(ceiling)}")
            for label, ui_path, api_path in CASES:
                ui = await _measure(client, ui_path, args.samples)
                api = await _measure(client, api_path, args.samples)
                ratio = statistics.median(ui) / statistics.median(api)
                print(f"UI  {label:38s} {_stats(ui)}")
                print(f"API {label:38s} {_stats(api)}  UI/API p50 {ratio:.2f}")
            dashboard = await _measure(client, "/ui/", args.samples)
            print(f"{'UI  dashboard':42s} {_stats(dashboard)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--db", help="database file to fill once and reuse")
    trio.run(main, parser.parse_args())
    sys.exit(0)
