"""The real ``dkron-trio agent --server`` runs jobs, survives kill -9 and handles misfires."""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dkron_trio.execution import Execution, ExecutionStatus, MissReason
from dkron_trio.job import Job
from dkron_trio.store.base import ExecutionQuery, JobQuery
from dkron_trio.store.sqlite import open_sqlite_store
from tests.e2e.process import AgentProcess, free_port, wait_for

DOWNTIME_SECONDS = 4.0


def _job(name: str, policy: str) -> Job:
    return Job.from_json(
        {
            "name": name,
            "schedule": "@every 1s",
            "executor": "shell",
            "executor_config": {"command": "date -u"},
            "misfire_policy": policy,
            "misfire_grace": "1s",
        },
        now=datetime.now(UTC),
    )


async def _executions(db: Path, job: str) -> list[Execution]:
    async with open_sqlite_store(db) as store:
        return await store.list_executions(job, ExecutionQuery())


async def _successes(db: Path, job: str) -> int:
    return sum(1 for e in await _executions(db, job) if e.success)


def _ticks(execs: list[Execution]) -> set[datetime]:
    return {e.scheduled_at for e in execs if e.scheduled_at is not None}


async def test_runs_survives_kill_and_applies_misfire_policy(tmp_path: Path) -> None:
    data_dir = tmp_path / "dkron.data"
    data_dir.mkdir()
    db = data_dir / "state.db"
    async with open_sqlite_store(db) as store:
        await store.set_job(_job("run-all", "run_all"))
        await store.set_job(_job("skip", "skip"))

    agent = AgentProcess(data_dir, free_port())
    agent.start()
    try:
        await wait_for(
            lambda: _at_least(db, 3), within=30, what="3 successful runs of each job", agent=agent
        )
        first = await _executions(db, "run-all")
        assert all("UTC" in e.output for e in first if e.success), first
        agent.kill()
        killed_at = datetime.now(UTC)
        time.sleep(DOWNTIME_SECONDS)  # the fault itself: the server stays down this long
        agent.start()

        restarted_at = datetime.now(UTC)

        async def caught_up() -> bool:
            later = restarted_at + timedelta(seconds=2)
            return all(
                any(e.success and e.scheduled_at and e.scheduled_at > later for e in execs)
                for execs in [await _executions(db, "run-all"), await _executions(db, "skip")]
            )

        await wait_for(caught_up, within=30, what="runs after restart", agent=agent)
        assert agent.terminate() == 0
    finally:
        agent.stop_quietly()

    async with open_sqlite_store(db) as store:
        jobs = {j.name for j in (await store.list_jobs(JobQuery())).jobs}
        assert jobs == {"run-all", "skip"}
        run_all = await store.list_executions("run-all", ExecutionQuery())
        skip = await store.list_executions("skip", ExecutionQuery())
        skip_missed = await store.list_missed("skip")
        run_all_missed = await store.list_missed("run-all")

    # Anything running at the kill is recorded as lost, never left "running".
    assert not [e for e in run_all + skip if e.status is ExecutionStatus.RUNNING]

    # run_all: every second from the first tick to the last ran, downtime included.
    ticks = sorted(_ticks(run_all))
    expected = {ticks[0] + timedelta(seconds=i) for i in range(len(ticks))}
    assert set(ticks) == expected, "run_all left a gap"
    assert not [m for m in run_all_missed if m.reason is MissReason.MISFIRE]
    assert any(killed_at < t < killed_at + timedelta(seconds=DOWNTIME_SECONDS - 1) for t in ticks)

    # skip: ticks of the downtime are recorded as misfires, and every tick ran or was recorded.
    misfires = {m.scheduled_at for m in skip_missed if m.reason is MissReason.MISFIRE}
    downtime = [
        t for t in misfires if killed_at < t < killed_at + timedelta(seconds=DOWNTIME_SECONDS - 1)
    ]
    assert len(downtime) >= 2, misfires
    ran = _ticks(skip)
    assert not ran & misfires
    covered = sorted(ran | {m.scheduled_at for m in skip_missed})
    assert set(covered) == {covered[0] + timedelta(seconds=i) for i in range(len(covered))}


async def _at_least(db: Path, n: int) -> bool:
    return await _successes(db, "run-all") >= n and await _successes(db, "skip") >= n
