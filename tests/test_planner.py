"""The pure planner: due ticks, misfire policies, overlap, pause, starts/expires, retries."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dkron_trio.execution import MissReason
from dkron_trio.job import Job
from dkron_trio.planner import (
    MAX_LEDGER_PER_PLAN,
    JobPlan,
    may_plan_ahead,
    next_due,
    plan_job,
    retry_delay,
    should_retry,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def sec(n: float) -> datetime:
    return T0 + timedelta(seconds=n)


def job(**fields: Any) -> Job:
    base: dict[str, Any] = {
        "name": "j",
        "schedule": "@every 10s",
        "executor": "shell",
        "executor_config": {"command": "true"},
    }
    return Job.from_json(base | fields, now=T0)


def plan(j: Job, cursor: float, now: float, *, running: int = 0, paused: bool = False) -> JobPlan:
    return plan_job(j, j.schedule_obj(), sec(cursor), sec(now), running=running, paused=paused)


def test_nothing_due_before_first_tick() -> None:
    p = plan(job(), 0, 9.9)
    assert p.runs == () and p.missed == ()
    assert p.cursor == sec(0) and p.next_due == sec(10)


def test_due_tick_runs_and_advances_cursor() -> None:
    p = plan(job(), 0, 10.002)
    assert p.runs == (sec(10),)
    assert p.cursor == sec(10) and p.next_due == sec(20)


def test_a_tick_within_the_horizon_is_planned_ahead_and_on_time() -> None:
    j = job(misfire_policy="skip", misfire_grace="1s")
    p = plan_job(j, j.schedule_obj(), sec(0), sec(9.9), running=0, paused=False, horizon=sec(10))
    assert p.runs == (sec(10),) and p.missed == ()
    assert p.cursor == sec(10) and p.next_due == sec(20)
    late = plan_job(
        j, j.schedule_obj(), sec(0), sec(21.5), running=0, paused=False, horizon=sec(22)
    )
    assert late.runs == () and [m.scheduled_at for m in late.missed] == [sec(10), sec(20)]


@pytest.mark.parametrize(
    ("concurrency", "running", "ahead"),
    [
        ("allow", 0, True),
        ("allow", 3, True),
        ("forbid", 0, True),
        ("forbid", 1, False),
        ("replace", 0, True),
        ("replace", 1, False),
    ],
)
def test_may_plan_ahead_unless_the_tick_depends_on_what_runs_then(
    concurrency: str, running: int, ahead: bool
) -> None:
    assert may_plan_ahead(job(concurrency=concurrency), running) is ahead


def test_late_within_grace_is_not_a_misfire() -> None:
    p = plan(job(misfire_grace="5s"), 0, 14)
    assert p.runs == (sec(10),) and p.missed == ()


@pytest.mark.parametrize(
    ("policy", "runs", "missed"),
    [
        ("skip", [40], [10, 20, 30]),
        ("run_all", [10, 20, 30, 40], []),
        ("run_once", [40], [10, 20, 30]),
    ],
)
def test_misfire_policies_with_an_on_time_tick(
    policy: str, runs: list[int], missed: list[int]
) -> None:
    p = plan(job(misfire_policy=policy, misfire_grace="5s"), 0, 42)
    assert p.runs == tuple(sec(s) for s in runs)
    assert [m.scheduled_at for m in p.missed] == [sec(s) for s in missed]
    assert all(m.reason is MissReason.MISFIRE for m in p.missed)
    assert p.cursor == sec(40) and p.next_due == sec(50)


@pytest.mark.parametrize(
    ("policy", "runs", "missed"),
    [
        ("skip", [], [10, 20, 30]),
        ("run_all", [10, 20, 30], []),
        ("run_once", [30], [10, 20]),
    ],
)
def test_misfire_policies_when_every_tick_is_late(
    policy: str, runs: list[int], missed: list[int]
) -> None:
    p = plan(job(misfire_policy=policy, misfire_grace="5s"), 0, 38)
    assert p.runs == tuple(sec(s) for s in runs)
    assert [m.scheduled_at for m in p.missed] == [sec(s) for s in missed]


def test_default_policy_is_run_once_with_60s_grace() -> None:
    j = job()
    assert j.misfire_policy.value == "run_once"
    assert j.misfire_grace == timedelta(seconds=60)
    p = plan(j, 0, 100)
    assert p.runs == (sec(40), sec(50), sec(60), sec(70), sec(80), sec(90), sec(100))
    assert [m.scheduled_at for m in p.missed] == [sec(10), sec(20), sec(30)]


def test_paused_records_every_tick() -> None:
    p = plan(job(), 0, 30, paused=True)
    assert p.runs == ()
    assert [(m.scheduled_at, m.reason) for m in p.missed] == [
        (sec(10), MissReason.PAUSED),
        (sec(20), MissReason.PAUSED),
        (sec(30), MissReason.PAUSED),
    ]
    assert p.cursor == sec(30)


def test_forbid_skips_while_running() -> None:
    p = plan(job(concurrency="forbid"), 0, 10, running=1)
    assert p.runs == ()
    assert [(m.scheduled_at, m.reason) for m in p.missed] == [(sec(10), MissReason.OVERLAP)]


def test_forbid_runs_at_most_one_per_batch() -> None:
    p = plan(job(concurrency="forbid", misfire_grace="60s"), 0, 30)
    assert p.runs == (sec(10),)
    assert [m.reason for m in p.missed] == [MissReason.OVERLAP, MissReason.OVERLAP]


def test_replace_cancels_running_and_keeps_newest() -> None:
    p = plan(job(concurrency="replace", misfire_grace="60s"), 0, 20, running=1)
    assert p.runs == (sec(20),) and p.cancel_running
    assert [(m.scheduled_at, m.reason) for m in p.missed] == [(sec(10), MissReason.OVERLAP)]


def test_allow_runs_alongside() -> None:
    p = plan(job(), 0, 10, running=3)
    assert p.runs == (sec(10),) and not p.cancel_running


def test_starts_at_and_expires_at_bound_the_ticks() -> None:
    j = job(
        schedule="*/10 * * * * *",
        starts_at="2026-01-01T00:00:25Z",
        expires_at="2026-01-01T00:00:45Z",
    )
    p = plan(j, 0, 60)
    assert p.runs == (sec(30), sec(40))
    assert p.next_due is None


def test_every_is_anchored_to_starts_at() -> None:
    j = job(starts_at="2026-01-01T00:00:25Z", expires_at="2026-01-01T00:00:45Z")
    assert plan(j, 0, 60).runs == (sec(25), sec(35), sec(45))


def test_starts_at_itself_fires_when_on_the_grid() -> None:
    j = job(starts_at="2026-01-01T00:00:30Z")
    assert next_due(j, j.schedule_obj(), sec(0)) == sec(30)


def test_disabled_and_child_jobs_are_never_due() -> None:
    assert next_due(job(disabled=True), job().schedule_obj(), sec(0)) is None
    child = job(parent_job="parent", schedule="")
    assert next_due(child, child.schedule_obj(), sec(0)) is None


def test_manual_schedule_is_never_due() -> None:
    j = job(schedule="@manually")
    assert plan(j, 0, 1000).runs == () and plan(j, 0, 1000).next_due is None


def test_ledger_is_capped_with_a_summary_record() -> None:
    j = job(schedule="@every 1s", misfire_policy="skip", misfire_grace="1s")
    p = plan(j, 0, MAX_LEDGER_PER_PLAN + 500)
    assert len(p.missed) == MAX_LEDGER_PER_PLAN + 1
    assert "more ticks" in p.missed[-1].detail
    assert p.cursor == sec(MAX_LEDGER_PER_PLAN + 500)


def test_retry_backoff_doubles_and_caps() -> None:
    j = job(retries=10, retry_backoff="2s")
    assert [retry_delay(j, a).total_seconds() for a in (1, 2, 3)] == [2, 4, 8]
    assert retry_delay(j, 20) == timedelta(minutes=5)


def test_should_retry_counts_extra_attempts() -> None:
    j = job(retries=2)
    assert should_retry(j, 1, False) and should_retry(j, 2, False)
    assert not should_retry(j, 3, False)
    assert not should_retry(j, 1, True)
