"""The Trio scheduler and run manager under MockClock, with the memory store and fake executors."""

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
import trio
from trio.testing import MockClock

from dkron_trio.clock import WallClock
from dkron_trio.execution import Execution, ExecutionStatus, MissReason
from dkron_trio.executors.base import ExecutionRequest, ExecutionResult, Executor, OutputCallback
from dkron_trio.job import Job, JobStatus
from dkron_trio.runs import RunManager, RunRefused
from dkron_trio.scheduler import PLAN_AHEAD, PLAN_WINDOW, Scheduler
from dkron_trio.store.base import ExecutionQuery, JobNotFound, PlanRecord, PlansRecorded
from dkron_trio.store.memory import MemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)

Behaviour = Callable[[ExecutionRequest], Awaitable[bool]]


async def succeed(req: ExecutionRequest) -> bool:
    return True


@attrs.define
class FakeExecutor:
    """Records every request; behaves per job as told (default: succeed at once)."""

    clock: WallClock
    behaviours: dict[str, Behaviour] = attrs.field(factory=dict)
    calls: list[tuple[ExecutionRequest, datetime]] = attrs.field(factory=list)

    async def run(self, req: ExecutionRequest, on_output: OutputCallback) -> ExecutionResult:
        self.calls.append((req, self.clock.now()))
        on_output(b"hello\n")
        ok = await self.behaviours.get(req.job_name, succeed)(req)
        return ExecutionResult(ok, "hello\n", 0 if ok else 1, "" if ok else "failed")

    def ticks(self, job: str) -> list[float]:
        return [(r.scheduled_at - T0).total_seconds() for r, _ in self.calls if r.job_name == job]


@attrs.define
class Harness:
    store: MemoryStore
    clock: WallClock
    executor: FakeExecutor
    runs: RunManager
    scheduler: Scheduler

    async def add(self, **fields: Any) -> Job:
        base: dict[str, Any] = {
            "schedule": "@every 10s",
            "executor": "shell",
            "executor_config": {"command": "true"},
        }
        job = await self.store.set_job(Job.from_json(base | fields, now=self.clock.now()))
        await self.scheduler.job_changed(job.name)
        return job

    async def until(self, seconds: float) -> None:
        await trio.sleep_until(self.clock.deadline(T0 + timedelta(seconds=seconds)))

    async def executions(self, job: str) -> list[Execution]:
        return await self.store.list_executions(job, ExecutionQuery())


@asynccontextmanager
async def scheduling(
    store: MemoryStore, tags: dict[str, str] | None = None, **settings: Any
) -> AsyncIterator[Harness]:
    """A run manager and a scheduler (with ``settings``) on ``store`` from T0, running for
    the block. Tests using it must also request ``autojump_clock`` (pytest-trio takes the
    clock only from the test's own arguments)."""
    clock = WallClock.starting_at(T0)
    executor = FakeExecutor(clock)

    def executors(name: str) -> Executor:
        return executor

    runs = RunManager(store, clock, "node1", tags or {}, executors)
    scheduler = Scheduler(store, runs, clock, **settings)
    async with trio.open_nursery() as nursery:
        await nursery.start(runs.run)
        await nursery.start(scheduler.run)
        yield Harness(store, clock, executor, runs, scheduler)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with scheduling(MemoryStore(), {"dkron_server": "true"}) as running:
        yield running


async def test_every_fires_on_its_grid(harness: Harness, autojump_clock: MockClock) -> None:
    await harness.add(name="a")
    await harness.until(35)
    assert harness.executor.ticks("a") == [10, 20, 30]
    lateness = [when - req.scheduled_at for req, when in harness.executor.calls]
    assert all(timedelta(0) <= late < timedelta(milliseconds=1) for late in lateness)
    execs = await harness.executions("a")
    assert [e.status for e in execs] == [ExecutionStatus.SUCCESS] * 3
    job = await harness.store.get_job("a")
    assert job.success_count == 3 and job.status is JobStatus.SUCCESS


@attrs.define
class SlowPlanStore(MemoryStore):
    """Takes ``delay`` to store plans, as a commit (fsync, Raft round) does."""

    delay: timedelta = timedelta(0)

    async def record_plans(self, plans: Sequence[PlanRecord]) -> PlansRecorded:
        await trio.sleep(self.delay.total_seconds())
        return await super().record_plans(plans)


async def test_a_tick_is_planned_ahead_so_a_slow_commit_does_not_make_it_late(
    autojump_clock: MockClock,
) -> None:
    store = SlowPlanStore(delay=PLAN_AHEAD * 0.9)
    async with scheduling(store) as h:
        for name in ("a", "b"):
            await h.add(name=name, schedule="@every 1s")
        await h.until(5.5)
    assert sorted(h.executor.ticks("a")) == [1, 2, 3, 4, 5]
    assert [when - req.scheduled_at for req, when in h.executor.calls] == [timedelta(0)] * 10
    for e in await store.list_executions("a", ExecutionQuery()):
        assert e.started_at == e.scheduled_at  # started at its tick, planned before it


async def test_the_next_ticks_are_decided_while_a_plan_commits(
    autojump_clock: MockClock,
) -> None:
    """Ticks 0.3 s apart and commits of 0.45 s: each tick's decision comes while the one
    before commits, and every run starts on time (waiting for each commit before the next
    decision made every second tick late)."""
    async with scheduling(SlowPlanStore(delay=PLAN_AHEAD * 0.9)) as h:
        for i, name in enumerate("abc"):
            await h.until(0.3 * i)  # created 0.3 s apart
            await h.add(name=name, schedule="@every 1s")
        await h.until(5.9)
    assert len(h.executor.calls) == 15
    assert [when - req.scheduled_at for req, when in h.executor.calls] == [timedelta(0)] * 15


@pytest.mark.parametrize("change", ["update", "reschedule", "delete"])
async def test_a_job_changed_while_its_plan_commits_runs_each_tick_once(
    autojump_clock: MockClock, change: str
) -> None:
    """The tick at 10 s is being committed (9.5 to 9.9 s) when the job changes at 9.7 s:
    an update keeps the tick sequence, a new schedule takes over after the planned tick,
    a delete ends it; no tick is planned twice."""
    store = SlowPlanStore(delay=timedelta(milliseconds=400))
    async with scheduling(store) as h:
        await h.add(name="a")
        await h.until(9.7)
        if change == "delete":
            await store.delete_job("a")
            await h.scheduler.job_changed("a")
        elif change == "update":
            await h.add(name="a", owner="x")
        else:
            await h.add(name="a", schedule="*/4 * * * * *")
        await h.until(25)
    expected = {"update": [10, 20], "reschedule": [10, 12, 16, 20, 24], "delete": []}
    assert h.executor.ticks("a") == expected[change]


@attrs.define
class CountingPlanStore(MemoryStore):
    """Remembers the jobs of each `record_plans` call."""

    writes: list[list[str]] = attrs.field(factory=list)

    async def record_plans(self, plans: Sequence[PlanRecord]) -> PlansRecorded:
        self.writes.append([p.job_name for p in plans if p.started])
        return await super().record_plans(plans)


async def test_ticks_close_together_are_planned_in_one_store_write(
    autojump_clock: MockClock,
) -> None:
    store = CountingPlanStore()
    step = PLAN_WINDOW / 5
    async with scheduling(store) as h:
        for i in range(3):  # ticks at 10 s, 10 s + step, 10 s + 2 step
            await h.until(i * step.total_seconds())
            await h.add(name=f"j{i}")
        await h.until(11)
    assert [w for w in store.writes if w] == [["j0", "j1", "j2"]]
    assert [when - req.scheduled_at for req, when in h.executor.calls] == [timedelta(0)] * 3


async def test_a_forbid_job_running_when_its_tick_is_planned_is_decided_when_due(
    harness: Harness, autojump_clock: MockClock
) -> None:
    async def almost_ten(req: ExecutionRequest) -> bool:
        await trio.sleep(10 - PLAN_AHEAD.total_seconds() / 2)  # still running when planned
        return True

    harness.executor.behaviours["f"] = almost_ten
    await harness.add(name="f", concurrency="forbid")
    await harness.until(35)
    assert harness.executor.ticks("f") == [10, 20, 30]
    assert await harness.store.list_missed("f") == []


async def test_update_keeps_every_phase_and_schedule_change_restarts_from_now(
    harness: Harness, autojump_clock: MockClock
) -> None:
    await harness.add(name="a")
    await harness.until(15)
    await harness.add(name="a", owner="someone")  # not a schedule change: phase kept
    await harness.until(25)
    assert harness.executor.ticks("a") == [10, 20]
    await harness.until(27)
    await harness.add(name="a", schedule="*/5 * * * * *")  # from now on: 30, 35
    await harness.until(36)
    assert harness.executor.ticks("a") == [10, 20, 30, 35]
    assert await harness.store.list_missed("a") == []


async def test_forbid_records_overlap(harness: Harness, autojump_clock: MockClock) -> None:
    async def slow(req: ExecutionRequest) -> bool:
        await trio.sleep(25)
        return True

    harness.executor.behaviours["slow"] = slow
    await harness.add(name="slow", concurrency="forbid")
    await harness.until(45)
    assert harness.executor.ticks("slow") == [10, 40]
    missed = await harness.store.list_missed("slow")
    assert sorted((m.scheduled_at - T0).total_seconds() for m in missed) == [20, 30]
    assert {m.reason for m in missed} == {MissReason.OVERLAP}


async def test_replace_cancels_the_running_execution(
    harness: Harness, autojump_clock: MockClock
) -> None:
    async def slow(req: ExecutionRequest) -> bool:
        await trio.sleep(15)
        return True

    harness.executor.behaviours["r"] = slow
    await harness.add(name="r", concurrency="replace")
    await harness.until(21)
    statuses = sorted((e.scheduled_at, e.status) for e in await harness.executions("r"))
    assert [s for _, s in statuses] == [ExecutionStatus.CANCELLED, ExecutionStatus.RUNNING]


async def test_retry_then_success_is_success(harness: Harness, autojump_clock: MockClock) -> None:
    attempts: list[int] = []

    async def flaky(req: ExecutionRequest) -> bool:
        attempts.append(req.attempt)
        return req.attempt >= 2

    harness.executor.behaviours["f"] = flaky
    await harness.add(name="f", schedule="@manually", retries=3, retry_backoff="2s")
    job = await harness.store.get_job("f")
    await harness.runs.start_manual_run(job)
    await harness.until(10)
    assert attempts == [1, 2]
    execs = await harness.executions("f")
    assert len({e.group for e in execs}) == 1
    assert (await harness.store.get_job("f")).status is JobStatus.SUCCESS


async def test_retries_exhausted_is_failed(harness: Harness, autojump_clock: MockClock) -> None:
    async def fail(req: ExecutionRequest) -> bool:
        return False

    harness.executor.behaviours["f"] = fail
    await harness.add(name="f", schedule="@manually", retries=2, retry_backoff="1s")
    await harness.runs.start_manual_run(await harness.store.get_job("f"))
    await harness.until(30)
    assert [e.attempt for e in sorted(await harness.executions("f"), key=lambda e: e.attempt)] == [
        1,
        2,
        3,
    ]
    assert (await harness.store.get_job("f")).status is JobStatus.FAILED


async def test_dependents_run_after_parent_success(
    harness: Harness, autojump_clock: MockClock
) -> None:
    await harness.add(name="parent")
    await harness.add(name="child", parent_job="parent", schedule="")
    await harness.add(name="off", parent_job="parent", schedule="", disabled=True)
    await harness.until(12)
    assert harness.executor.ticks("parent") == [10]
    assert len(harness.executor.ticks("child")) == 1
    assert harness.executor.ticks("off") == []


async def test_ephemeral_job_is_deleted_after_success(
    harness: Harness, autojump_clock: MockClock
) -> None:
    await harness.add(name="once", ephemeral=True)
    await harness.until(12)
    with pytest.raises(JobNotFound):
        await harness.store.get_job("once")
    await harness.until(40)
    assert harness.executor.ticks("once") == [10]


async def test_pause_records_ticks_as_missed(harness: Harness, autojump_clock: MockClock) -> None:
    await harness.add(name="p")
    harness.scheduler.set_paused(True)
    await harness.until(25)
    harness.scheduler.set_paused(False)
    await harness.until(35)
    assert harness.executor.ticks("p") == [30]
    missed = await harness.store.list_missed("p")
    assert {m.reason for m in missed} == {MissReason.PAUSED} and len(missed) == 2


async def test_no_targets_is_recorded(harness: Harness, autojump_clock: MockClock) -> None:
    await harness.add(name="t", tags={"role": "db"})
    await harness.until(12)
    assert harness.executor.ticks("t") == []
    assert [m.reason for m in await harness.store.list_missed("t")] == [MissReason.NO_TARGETS]


async def test_manual_run_respects_forbid_unless_forced(
    harness: Harness, autojump_clock: MockClock
) -> None:
    async def slow(req: ExecutionRequest) -> bool:
        await trio.sleep(100)
        return True

    harness.executor.behaviours["m"] = slow
    await harness.add(name="m", schedule="@manually", concurrency="forbid")
    job = await harness.store.get_job("m")
    await harness.runs.start_manual_run(job)
    await trio.sleep(1)
    with pytest.raises(RunRefused):
        await harness.runs.start_manual_run(job)
    await harness.runs.start_manual_run(job, force=True)
    await trio.sleep(1)
    assert harness.runs.running_count("m") == 2


async def test_delete_stops_scheduling(harness: Harness, autojump_clock: MockClock) -> None:
    await harness.add(name="d")
    await harness.until(12)
    await harness.store.delete_job("d")
    await harness.scheduler.job_changed("d")
    await harness.until(40)
    assert harness.executor.ticks("d") == [10]


async def test_orphaned_running_executions_become_lost(
    autojump_clock: MockClock,
) -> None:
    store = MemoryStore()
    clock = WallClock.starting_at(T0)
    job = await store.set_job(
        Job.from_json(
            {
                "name": "o",
                "schedule": "@manually",
                "executor": "shell",
                "executor_config": {"command": "true"},
            },
            now=T0,
        )
    )
    orphan = Execution(
        id="1-node1",
        job_name=job.name,
        started_at=T0,
        finished_at=None,
        success=False,
        output="partial",
        node_name="node1",
        group=1,
        attempt=1,
        scheduled_at=T0,
        fence=1,
        status=ExecutionStatus.RUNNING,
        exit_code=None,
    )
    await store.put_execution(orphan)
    runs = RunManager(store, clock, "node1", {})
    scheduler = Scheduler(store, runs, clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(runs.run)
        await nursery.start(scheduler.run)
        nursery.cancel_scope.cancel()
    (lost,) = await store.list_executions("o", ExecutionQuery())
    assert lost.status is ExecutionStatus.LOST and lost.finished_at == T0
    assert await store.running_executions() == []


async def test_a_plan_committed_after_the_run_manager_stopped_starts_nothing(
    autojump_clock: MockClock,
) -> None:
    store = MemoryStore()
    clock = WallClock.starting_at(T0)
    executor = FakeExecutor(clock)
    job = await store.set_job(
        Job.from_json(
            {
                "name": "s",
                "schedule": "@manually",
                "executor": "shell",
                "executor_config": {"command": "true"},
            },
            now=T0,
        )
    )
    runs = RunManager(store, clock, "node1", {}, lambda name: executor)
    async with trio.open_nursery() as nursery:
        await nursery.start(runs.run)
        nursery.cancel_scope.cancel()
    [planned] = runs.plan_attempts(job, T0)
    runs.start_planned(job, planned)  # shutting down: refused quietly, nothing runs
    await runs.wait_idle()
    assert executor.calls == []


async def test_the_scheduler_loads_jobs_and_cursors_in_one_read(
    autojump_clock: MockClock,
) -> None:
    """A new leader must be ready soon after its election: it reads every job with its
    cursor at once (not one store round trip per job) and resumes each from its cursor."""

    @attrs.define
    class OneReadStore(MemoryStore):
        async def get_cursor(self, job_name: str) -> datetime | None:
            raise AssertionError(f"cursor of {job_name} read one by one")

    store = OneReadStore()
    clock = WallClock.starting_at(T0)
    for name in ("resumed", "fresh"):
        body = {"name": name, "schedule": "@every 10s", "executor": "shell"}
        await store.set_job(Job.from_json(body | {"executor_config": {"command": "true"}}, now=T0))
    await store.set_cursor("resumed", T0 + timedelta(seconds=12))
    runs = RunManager(store, clock, "node1", {}, lambda name: FakeExecutor(clock))
    scheduler = Scheduler(store, runs, clock)
    async with trio.open_nursery() as nursery:
        await nursery.start(runs.run)
        await nursery.start(scheduler.run)
        assert scheduler.next_fire("resumed") == T0 + timedelta(seconds=20)
        assert scheduler.next_fire("fresh") == T0 + timedelta(seconds=10)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("change", ["delete", "disable"])
async def test_a_run_waiting_for_its_tick_is_cancelled_by_delete_or_disable(
    harness: Harness, autojump_clock: MockClock, change: str
) -> None:
    await harness.add(name="w")
    await harness.until(10 - PLAN_AHEAD.total_seconds() / 2)  # tick 10 planned, not started
    assert harness.runs.running_count("w") == 1
    if change == "delete":
        await harness.store.delete_job("w")
        await harness.scheduler.job_changed("w")
    else:
        await harness.add(name="w", disabled=True)
    await harness.until(10 - PLAN_AHEAD.total_seconds() / 4)
    assert harness.runs.running_count("w") == 0  # ended at once, before its tick
    await harness.until(25)
    assert harness.executor.calls == []
    if change == "disable":
        [cancelled] = await harness.executions("w")
        assert cancelled.status is ExecutionStatus.CANCELLED


async def test_no_runs_are_planned_while_the_event_loop_lags(autojump_clock: MockClock) -> None:
    """While the loop's lag is above `max_lag` (seconds 12 to 27 here) nothing is planned;
    then the late ticks are planned at once, within their misfire grace (all run)."""
    store = MemoryStore()
    clock = WallClock.starting_at(T0)
    executor = FakeExecutor(clock)
    runs = RunManager(store, clock, "node1", {}, lambda name: executor)

    def lag() -> float:
        return 1.0 if 12 <= (clock.now() - T0).total_seconds() < 27 else 0.0

    scheduler = Scheduler(store, runs, clock, lag=lag, max_lag=0.2)
    async with trio.open_nursery() as nursery:
        await nursery.start(runs.run)
        await nursery.start(scheduler.run)
        body = {"name": "a", "schedule": "@every 5s", "executor": "shell"}
        await store.set_job(Job.from_json(body | {"executor_config": {"command": "t"}}, now=T0))
        await scheduler.job_changed("a")
        await trio.sleep_until(clock.deadline(T0 + timedelta(seconds=26.9)))
        assert executor.ticks("a") == [5, 10]
        await trio.sleep_until(clock.deadline(T0 + timedelta(seconds=31)))
        assert sorted(executor.ticks("a")) == [5, 10, 15, 20, 25, 30]
        started = [when for req, when in executor.calls]
        assert all(
            T0 + timedelta(seconds=27) <= t < T0 + timedelta(seconds=27.2) for t in started[2:5]
        )
        nursery.cancel_scope.cancel()


@attrs.define
class InFlightPlanStore(MemoryStore):
    """Counts the plans being stored at once (each store takes 10 ms)."""

    in_flight: int = 0
    most: int = 0

    async def record_plans(self, plans: Sequence[PlanRecord]) -> PlansRecorded:
        self.in_flight += len(plans)
        self.most = max(self.most, self.in_flight)
        try:
            await trio.sleep(0.01)
            return await super().record_plans(plans)
        finally:
            self.in_flight -= len(plans)


@pytest.mark.parametrize("rounds", [1, 2])
async def test_a_wake_up_decides_at_most_max_decisions_jobs(
    autojump_clock: MockClock, rounds: int
) -> None:
    """240 jobs due at the same instant, at most 100 decided per wake-up: planned in
    wake-ups one after the other, at most `rounds` of them committing at once, and all of
    them run."""
    store = InFlightPlanStore()
    for i in range(240):
        body = {"name": f"j{i}", "schedule": "@every 10s", "executor": "shell"}
        await store.set_job(Job.from_json(body | {"executor_config": {"command": "t"}}, now=T0))
    async with scheduling(store, max_decisions=100, max_rounds=rounds) as h:
        await h.until(11)
        assert len(h.executor.calls) == 240
        assert 100 * (rounds - 1) < store.most <= 100 * rounds
