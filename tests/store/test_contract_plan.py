"""record_plans: a batch of scheduler decisions stored at once (both stores)."""

from datetime import timedelta

from dkron_trio.execution import ExecutionStatus, MissedTick, MissReason
from dkron_trio.store.base import ExecutionQuery, PlanRecord, PlansRecorded, Store
from tests.store.helpers import T0, execution, job


async def test_record_plans_stores_missed_running_and_cursor(store: Store) -> None:
    await store.set_job(job("a"))
    await store.set_job(job("b"))
    missed = [MissedTick("a", T0 + timedelta(seconds=10), MissReason.MISFIRE, T0)]
    running = [execution("a", 20, ExecutionStatus.RUNNING)]
    plans = [
        PlanRecord("a", T0 + timedelta(seconds=20), missed, running),
        PlanRecord("b", T0 + timedelta(seconds=5), [], []),
    ]
    assert await store.record_plans(plans) == PlansRecorded(None)
    assert await store.get_cursor("a") == T0 + timedelta(seconds=20)
    assert await store.get_cursor("b") == T0 + timedelta(seconds=5)
    assert [m.scheduled_at for m in await store.list_missed("a")] == [missed[0].scheduled_at]
    assert [e.id for e in await store.running_executions("a")] == [running[0].id]


async def test_a_plan_for_a_missing_job_is_refused_alone(store: Store) -> None:
    await store.set_job(job("a"))
    plans = [
        PlanRecord("gone", T0, [], [execution("gone", 1, ExecutionStatus.RUNNING)]),
        PlanRecord(
            "a", T0 + timedelta(seconds=3), [], [execution("a", 2, ExecutionStatus.RUNNING)]
        ),
    ]
    assert await store.record_plans(plans) == PlansRecorded(None, frozenset({"gone"}))
    assert [e.job_name for e in await store.running_executions()] == ["a"]
    assert await store.get_cursor("a") == T0 + timedelta(seconds=3)
    assert await store.list_executions("a", ExecutionQuery()) != []
