"""What is due, what was missed and when to wake: the scheduler's decisions, without IO.

The scheduler keeps, per job, a *cursor*: the last scheduled tick it has handled (run or
recorded as missed). Given the job, its parsed schedule, the cursor and ``now``, `plan_job`
enumerates every tick in ``(cursor, now]`` and decides each one:

- a tick late by at most ``misfire_grace`` runs (it is merely late);
- older ticks are *misfires*: ``skip`` records them all as missed, ``run_all`` runs them all,
  ``run_once`` (the default) runs only the newest, and only if no on-time tick runs anyway;
- while the scheduler is paused every tick is recorded as missed (``paused``);
- concurrency: ``forbid`` runs nothing while a run is in progress and at most one run per batch,
  ``replace`` keeps the newest tick and cancels what is running, ``allow`` runs everything.

The scheduler plans a tick a little before it is due (a *horizon* past ``now``), so that the
plan is durable when the tick comes and the run starts on time; `may_plan_ahead` says when
that is safe.

Times are aware UTC datetimes throughout.
"""

from collections.abc import Iterator
from datetime import datetime, timedelta

import attrs

from dkron_trio.execution import MissedTick, MissReason
from dkron_trio.job import Concurrency, Job, MisfirePolicy
from dkron_trio.schedule import Schedule

MAX_LEDGER_PER_PLAN = 1000
"""Missed ticks recorded one by one per plan; beyond it one summary record carries the count."""


@attrs.frozen
class JobPlan:
    """The outcome of planning one job at ``now``."""

    runs: tuple[datetime, ...]
    missed: tuple[MissedTick, ...]
    cursor: datetime
    next_due: datetime | None
    cancel_running: bool = False


def initial_cursor(job: Job) -> datetime:
    """Where a job that was never planned starts: its creation (ticks before it never existed)."""
    return job.created_at


def next_due(job: Job, schedule: Schedule, cursor: datetime) -> datetime | None:
    """The first tick after ``cursor`` that the job may run, honouring starts_at/expires_at."""
    if job.parent_job or job.disabled:
        return None
    start = cursor
    if job.starts_at is not None and job.starts_at - timedelta(microseconds=1) > start:
        start = job.starts_at - timedelta(microseconds=1)
    due = schedule.next_after(start)
    if due is None or (job.expires_at is not None and due > job.expires_at):
        return None
    return due


def _ticks(job: Job, schedule: Schedule, cursor: datetime, now: datetime) -> Iterator[datetime]:
    t = cursor
    while True:
        due = next_due(job, schedule, t)
        if due is None or due > now:
            return
        yield due
        t = due


def plan_job(
    job: Job,
    schedule: Schedule,
    cursor: datetime,
    now: datetime,
    *,
    running: int,
    paused: bool,
    horizon: datetime | None = None,
) -> JobPlan:
    """Decide every tick of ``job`` in ``(cursor, max(now, horizon)]``; see the module
    docstring. Ticks past ``now`` are on time: they run when due."""
    until = now if horizon is None else max(now, horizon)
    ticks = list(_ticks(job, schedule, cursor, until))
    new_cursor = ticks[-1] if ticks else cursor
    upcoming = next_due(job, schedule, max(new_cursor, until))
    if not ticks:
        return JobPlan((), (), new_cursor, upcoming)
    if paused:
        return JobPlan((), _ledger(job.name, ticks, MissReason.PAUSED, now), new_cursor, upcoming)

    on_time = [t for t in ticks if now - t <= job.misfire_grace]
    late = [t for t in ticks if now - t > job.misfire_grace]
    runs: list[datetime]
    misfired: list[datetime]
    if job.misfire_policy is MisfirePolicy.RUN_ALL:
        runs, misfired = ticks, []
    elif job.misfire_policy is MisfirePolicy.SKIP or on_time:
        runs, misfired = on_time, late
    else:
        runs, misfired = late[-1:], late[:-1]

    overlapped: list[datetime] = []
    cancel = False
    if job.concurrency is Concurrency.FORBID:
        keep = 0 if running else 1
        runs, overlapped = runs[:keep], runs[keep:]
    elif job.concurrency is Concurrency.REPLACE and runs:
        runs, overlapped = runs[-1:], runs[:-1]
        cancel = running > 0

    missed = _ledger(job.name, misfired, MissReason.MISFIRE, now) + _ledger(
        job.name, overlapped, MissReason.OVERLAP, now
    )
    return JobPlan(tuple(runs), missed, new_cursor, upcoming, cancel)


def may_plan_ahead(job: Job, running: int) -> bool:
    """Whether a job's next tick may be decided before it is due. Not while a ``forbid`` or
    ``replace`` job runs: whether it still runs at the tick decides that tick. Otherwise
    nothing the plan depends on can change before the tick: the planned run counts as
    running from the moment its plan is stored."""
    return job.concurrency is Concurrency.ALLOW or running == 0


def _ledger(
    job_name: str, ticks: list[datetime], reason: MissReason, now: datetime
) -> tuple[MissedTick, ...]:
    """Missed-tick records, one per tick up to a cap, then one that counts the rest."""
    head = ticks[:MAX_LEDGER_PER_PLAN]
    records = [MissedTick(job_name, t, reason, now) for t in head]
    rest = ticks[MAX_LEDGER_PER_PLAN:]
    if rest:
        detail = f"{len(rest)} more ticks up to {rest[-1].isoformat()}"
        records.append(MissedTick(job_name, rest[0], reason, now, detail))
    return tuple(records)


def retry_delay(job: Job, attempt: int) -> timedelta:
    """Backoff before ``attempt`` + 1: ``retry_backoff`` doubled per attempt, capped at 5 min."""
    return min(job.retry_backoff * (1 << max(attempt - 1, 0)), timedelta(minutes=5))


def should_retry(job: Job, attempt: int, success: bool) -> bool:
    """Whether a finished attempt gets another (``retries`` extra attempts in all)."""
    return not success and attempt <= job.retries
