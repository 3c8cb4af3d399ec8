"""Every configurable limit: its key, its check, and what the server does at the limit."""

import io
import json
from collections.abc import Mapping
from typing import Any

import pytest
import trio
import trio.testing
from quart.datastructures import FileStorage

from dkron_trio.clock import WallClock
from dkron_trio.config import AgentConfig, ConfigError, load_config
from dkron_trio.executors.base import ExecutionRequest, ExecutionResult, OutputCallback
from dkron_trio.http.ratelimit import RateLimiter
from dkron_trio.job import Job
from dkron_trio.runs import RunManager
from dkron_trio.store.base import JobQuery
from dkron_trio.store.memory import MemoryStore
from tests.http.harness import T0, open_api


def _load(flags: Mapping[str, object]) -> AgentConfig:
    return load_config(flags, {}, None, [], hostname="test-host")


def test_limit_keys_default_and_parse_from_flags_and_env() -> None:
    config = _load({})
    assert (config.max_jobs_per_request, config.http_rate_limit, config.http_rate_burst) == (
        1000,
        0,
        0,
    )
    assert (config.max_concurrent_executions, config.rpc_max_frame_size) == (0, 16 << 20)
    flags = {
        "max-jobs-per-request": "5",
        "http-rate-limit": "20",
        "http-rate-burst": "3",
        "max-concurrent-executions": "2",
        "rpc-max-frame-size": "65536",
    }
    config = _load(flags)
    assert config.max_jobs_per_request == 5
    assert (config.http_rate_limit, config.http_rate_burst) == (20, 3)
    assert config.max_concurrent_executions == 2
    assert config.rpc_max_frame_size == 65536
    env = load_config({}, {"DKRON_HTTP_RATE_LIMIT": "7"}, None, [], hostname="h")
    assert env.http_rate_limit == 7


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max-jobs-per-request", "0"),
        ("http-rate-limit", "-1"),
        ("http-rate-burst", "-1"),
        ("max-concurrent-executions", "-1"),
        ("rpc-max-frame-size", "100"),
        ("rpc-max-frame-size", str(1 << 32)),
    ],
)
def test_bad_limits_are_refused_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        _load({key: value})


# ---- request rate per client address -------------------------------------------------------


def test_token_bucket_allows_the_burst_then_the_rate_per_client() -> None:
    limiter = RateLimiter(2.0, 3)
    assert [limiter.admit("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.admit("a", 0.0) == pytest.approx(0.5)
    assert limiter.admit("b", 0.0) == 0.0  # another address has its own bucket
    assert limiter.admit("a", 0.25) == pytest.approx(0.25)  # a refused request takes nothing
    assert limiter.admit("a", 0.5) == 0.0
    assert limiter.admit("a", 0.5) > 0


def test_token_bucket_forgets_full_buckets_and_keeps_at_most_max_clients() -> None:
    limiter = RateLimiter(1.0, 2, max_clients=3)
    for i in range(10):
        limiter.admit(f"10.0.0.{i}", 0.0)
    assert limiter.clients == 3
    limiter.admit("late", 100.0)
    assert limiter.clients == 1  # every other bucket had refilled: forgetting it is free


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1.0), (1.0, 0.5)])
def test_token_bucket_refuses_nonsense(rate: float, burst: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate, burst)


async def test_api_answers_429_with_retry_after_over_the_rate(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    api = await open_api(nursery, rate_limit=1.0, rate_burst=2)
    assert [(await api.request("GET", "/v1/jobs")).status_code for _ in range(2)] == [200, 200]
    refused = await api.request("GET", "/v1/jobs")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert "rate limit" in (await refused.get_json())["error"]
    await trio.sleep(1.0)
    assert (await api.request("GET", "/v1/jobs")).status_code == 200


async def test_api_has_no_rate_limit_by_default(nursery: trio.Nursery) -> None:
    api = await open_api(nursery)
    for _ in range(50):
        assert (await api.request("GET", "/health")).status_code == 200


# ---- jobs per request ----------------------------------------------------------------------


def _restore_file(n: int) -> dict[str, FileStorage]:
    jobs = [
        {"name": f"j{i}", "schedule": "@every 1h", "executor": "shell",
         "executor_config": {"command": "true"}}
        for i in range(n)
    ]  # fmt: skip
    return {"file": FileStorage(stream=io.BytesIO(json.dumps(jobs).encode()), filename="f")}


async def test_restore_over_max_jobs_per_request_is_413_and_stores_nothing(
    nursery: trio.Nursery,
) -> None:
    api = await open_api(nursery, max_jobs_per_request=3)
    status, body = await api.json("POST", "/v1/restore", files=_restore_file(4))
    assert status == 413
    assert "max-jobs-per-request" in body["error"]
    assert (await api.store.list_jobs(JobQuery())).total == 0
    status, _ = await api.json("POST", "/v1/restore", files=_restore_file(3))
    assert status == 200
    assert (await api.store.list_jobs(JobQuery())).total == 3


# ---- executions at once per node -----------------------------------------------------------


class _Counting:
    """An executor that records how many of its runs overlap, each held until released."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.release = trio.Event()
        self.done = 0

    async def run(self, req: ExecutionRequest, on_output: OutputCallback) -> ExecutionResult:
        self.running += 1
        self.most = max(self.most, self.running)
        await self.release.wait()
        self.running -= 1
        self.done += 1
        return ExecutionResult(True, "", 0, "")


def _job(name: str) -> Job:
    return Job.from_json(
        {"name": name, "schedule": "@manually", "executor": "shell",
         "executor_config": {"command": "true"}},
        now=T0,
    )  # fmt: skip


@pytest.mark.parametrize(("limit", "most"), [(2, 2), (0, 5)])
async def test_max_concurrent_executions_holds_further_runs_until_a_slot_frees(
    limit: int, most: int
) -> None:
    store = MemoryStore()
    executor = _Counting()
    kwargs: dict[str, Any] = {"max_concurrent": limit}
    runs = RunManager(store, WallClock.starting_at(T0), "n1", {}, lambda _: executor, **kwargs)
    async with trio.open_nursery() as nursery:
        await nursery.start(runs.run)
        for i in range(5):
            job = await store.set_job(_job(f"job{i}"))
            runs.start_run(job, T0)
        await trio.testing.wait_all_tasks_blocked()
        assert (executor.running, executor.most) == (most, most)
        assert runs.running_count("job4") == 1  # a waiting run is recorded as running
        executor.release.set()
        await trio.testing.wait_all_tasks_blocked()
        assert executor.done == 5
        nursery.cancel_scope.cancel()
    assert executor.most == most
