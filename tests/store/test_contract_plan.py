"""record_plan: one scheduler decision stored at once (both stores)."""

from datetime import timedelta

import pytest

from dkron_trio.execution import ExecutionStatus, MissedTick, MissReason
from dkron_trio.store.base import ExecutionQuery, JobNotFound, Store
from tests.store.helpers import T0, execution, job


async def test_record_plan_stores_missed_running_and_cursor(store: Store) -> None:
    await store.set_job(job("a"))
    missed = [MissedTick("a", T0 + timedelta(seconds=10), MissReason.MISFIRE, T0)]
    running = [execution("a", 20, ExecutionStatus.RUNNING)]
    await store.record_plan("a", T0 + timedelta(seconds=20), missed, running)
    assert await store.get_cursor("a") == T0 + timedelta(seconds=20)
    assert [m.scheduled_at for m in await store.list_missed("a")] == [missed[0].scheduled_at]
    assert [e.id for e in await store.running_executions("a")] == [running[0].id]


async def test_record_plan_for_a_missing_job_stores_nothing(store: Store) -> None:
    await store.set_job(job("a"))
    with pytest.raises(JobNotFound):
        await store.record_plan("gone", T0, [], [execution("gone", 1, ExecutionStatus.RUNNING)])
    assert await store.list_executions("a", ExecutionQuery()) == []
    assert await store.running_executions() == []
