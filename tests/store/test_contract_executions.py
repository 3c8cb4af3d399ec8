"""Store contract, executions: lifecycle, counters, status, retention, missed ticks, cursors."""

from datetime import timedelta

import attrs
import pytest

from dkron_trio.execution import ExecutionStatus, MissedTick, MissReason
from dkron_trio.job import JobStatus, ValidationError
from dkron_trio.store.base import (
    ExecutionNotFound,
    ExecutionQuery,
    InvalidQuery,
    JobNotFound,
    SortOrder,
    Store,
)

from .helpers import T0, execution, job

RUNNING = ExecutionStatus.RUNNING
SUCCESS = ExecutionStatus.SUCCESS
FAILED = ExecutionStatus.FAILED


async def ids(store: Store, name: str, q: ExecutionQuery | None = None) -> list[str]:
    return [ex.id for ex in await store.list_executions(name, q or ExecutionQuery())]


# --- lifecycle ------------------------------------------------------------------------------


async def test_running_then_finished(store: Store) -> None:
    await store.set_job(job("a"))
    running = execution("a", 1, RUNNING, output="partial")
    await store.put_execution(running)
    assert await store.get_execution("a", running.id) == running
    assert await store.running_executions() == [running]
    assert await store.running_executions("a") == [running]
    assert await store.running_executions("other") == []
    stored = await store.get_job("a")
    assert (stored.success_count, stored.status) == (0, JobStatus.UNTRIGGERED)

    done = execution("a", 1, SUCCESS, output="all done")
    await store.put_execution(done)
    assert await store.get_execution("a", done.id) == done
    assert await store.running_executions() == []
    stored = await store.get_job("a")
    assert (stored.success_count, stored.error_count) == (1, 0)
    assert stored.status is JobStatus.SUCCESS
    assert stored.last_success == done.finished_at
    assert stored.last_error is None


async def test_replayed_finish_counts_once(store: Store) -> None:
    await store.set_job(job("a"))
    done = execution("a", 1, FAILED)
    await store.put_execution(execution("a", 1, RUNNING))
    await store.put_execution(done)
    await store.put_execution(done)
    stored = await store.get_job("a")
    assert (stored.success_count, stored.error_count) == (0, 1)
    assert stored.last_error == done.finished_at


async def test_finished_execution_never_goes_back_to_running(store: Store) -> None:
    await store.set_job(job("a"))
    done = execution("a", 1, SUCCESS)
    await store.put_execution(done)
    await store.put_execution(execution("a", 1, RUNNING))
    assert await store.get_execution("a", done.id) == done
    assert await store.running_executions() == []


async def test_lost_and_cancelled_count_as_errors(store: Store) -> None:
    await store.set_job(job("a"))
    await store.put_execution(execution("a", 1, ExecutionStatus.LOST, group=1))
    await store.put_execution(execution("a", 2, ExecutionStatus.CANCELLED, group=2))
    stored = await store.get_job("a")
    assert (stored.success_count, stored.error_count) == (0, 2)
    assert stored.status is JobStatus.FAILED


async def test_last_times_only_move_forward(store: Store) -> None:
    await store.set_job(job("a"))
    await store.put_execution(execution("a", 5, SUCCESS, group=5))
    await store.put_execution(execution("a", 2, SUCCESS, group=2))
    assert (await store.get_job("a")).last_success == T0 + timedelta(seconds=6)


async def test_execution_of_unknown_job_is_refused(store: Store) -> None:
    with pytest.raises(JobNotFound):
        await store.put_execution(execution("ghost", 1))
    with pytest.raises(JobNotFound):
        await store.list_executions("ghost", ExecutionQuery())
    with pytest.raises(JobNotFound):
        await store.get_execution("ghost", "1")


async def test_unknown_execution(store: Store) -> None:
    await store.set_job(job("a"))
    with pytest.raises(ExecutionNotFound) as info:
        await store.get_execution("a", "nope")
    assert (info.value.job_name, info.value.execution_id) == ("a", "nope")


# --- status rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        ([(1, 1, SUCCESS), (1, 1, SUCCESS)], JobStatus.SUCCESS),
        ([(1, 1, FAILED), (1, 1, FAILED)], JobStatus.FAILED),
        ([(1, 1, SUCCESS), (1, 1, FAILED)], JobStatus.PARTIALLY_FAILED),
        ([(1, 1, FAILED), (1, 2, SUCCESS)], JobStatus.SUCCESS),
        ([(1, 1, FAILED), (1, 2, FAILED)], JobStatus.FAILED),
        ([(1, 1, SUCCESS), (1, 1, FAILED), (1, 2, FAILED)], JobStatus.PARTIALLY_FAILED),
        ([(1, 1, FAILED), (2, 1, SUCCESS)], JobStatus.SUCCESS),
        ([(1, 1, SUCCESS), (2, 1, FAILED)], JobStatus.FAILED),
        ([(2, 1, FAILED), (1, 1, SUCCESS)], JobStatus.FAILED),
        ([(1, 1, SUCCESS), (2, 1, RUNNING)], JobStatus.SUCCESS),
        ([(1, 1, FAILED), (1, 2, RUNNING)], JobStatus.FAILED),
    ],
)
async def test_status_comes_from_the_latest_run(
    store: Store, runs: list[tuple[int, int, ExecutionStatus]], expected: JobStatus
) -> None:
    await store.set_job(job("a"))
    for n, (group, attempt, status) in enumerate(runs):
        await store.put_execution(
            execution("a", n, status, group=group, attempt=attempt, node=f"n{n}")
        )
    assert (await store.get_job("a")).status is expected


# --- listing --------------------------------------------------------------------------------


async def test_listing_sorts_and_limits(store: Store) -> None:
    await store.set_job(job("a"))
    await store.put_execution(execution("a", 1, SUCCESS, group=1, attempt=2))
    await store.put_execution(execution("a", 3, RUNNING, group=3))
    await store.put_execution(execution("a", 2, FAILED, group=2, attempt=3))
    assert await ids(store, "a") == ["0003-node1", "0002-node1", "0001-node1"]
    asc = ExecutionQuery(order=SortOrder.ASC)
    assert await ids(store, "a", asc) == ["0001-node1", "0002-node1", "0003-node1"]
    assert await ids(store, "a", ExecutionQuery(sort="id", limit=2)) == [
        "0003-node1",
        "0002-node1",
    ]
    by_attempt = ExecutionQuery(sort="attempt", order=SortOrder.ASC)
    assert await ids(store, "a", by_attempt) == ["0003-node1", "0001-node1", "0002-node1"]
    by_finish = ExecutionQuery(sort="finished_at", order=SortOrder.ASC)
    assert await ids(store, "a", by_finish) == ["0003-node1", "0001-node1", "0002-node1"]
    assert await ids(store, "a", ExecutionQuery(limit=0)) == []


@pytest.mark.parametrize("q", [ExecutionQuery(sort="output"), ExecutionQuery(limit=-1)])
async def test_bad_execution_queries_are_refused(store: Store, q: ExecutionQuery) -> None:
    await store.set_job(job("a"))
    with pytest.raises(InvalidQuery):
        await store.list_executions("a", q)


async def test_output_size_limit_keeps_the_tail(store: Store) -> None:
    await store.set_job(job("a"))
    await store.put_execution(execution("a", 1, output="héllo wörld"))
    await store.put_execution(execution("a", 2, output="short"))
    listed = await store.list_executions("a", ExecutionQuery(output_size_limit=6))
    assert [(ex.output, ex.output_truncated) for ex in listed] == [
        ("short", False),
        ("wörld", True),
    ]
    listed = await store.list_executions("a", ExecutionQuery(output_size_limit=4))
    assert listed[1].output == "rld"  # the cut splits "ö": it goes whole
    listed = await store.list_executions("a", ExecutionQuery(output_size_limit=0))
    assert [(ex.output, ex.output_truncated) for ex in listed] == [("", True), ("", True)]
    full = await store.get_execution("a", "0001-node1")
    assert (full.output, full.output_truncated) == ("héllo wörld", False)


async def test_running_executions_span_jobs_oldest_first(store: Store) -> None:
    await store.set_job(job("a"))
    await store.set_job(job("b"))
    await store.put_execution(execution("b", 2, RUNNING))
    await store.put_execution(execution("a", 1, RUNNING))
    await store.put_execution(execution("a", 3, SUCCESS))
    running = await store.running_executions()
    assert [(ex.job_name, ex.id) for ex in running] == [("a", "0001-node1"), ("b", "0002-node1")]


# --- deleting -------------------------------------------------------------------------------


async def test_delete_executions_resets_counters(store: Store) -> None:
    await store.set_job(job("a"))
    for n in range(3):
        await store.put_execution(execution("a", n, SUCCESS if n else FAILED, group=n))
    assert await store.delete_executions("a") == 3
    stored = await store.get_job("a")
    assert (stored.success_count, stored.error_count) == (0, 0)
    assert (stored.last_success, stored.last_error) == (None, None)
    assert await ids(store, "a") == []
    with pytest.raises(JobNotFound):
        await store.delete_executions("ghost")


async def test_deleting_a_job_keeps_other_jobs_executions(store: Store) -> None:
    """Dkron's prefix bug: deleting ``foo`` also deleted ``foo-bar``'s executions."""
    await store.set_job(job("foo"))
    await store.set_job(job("foo-bar"))
    await store.put_execution(execution("foo", 1))
    await store.put_execution(execution("foo-bar", 2))
    await store.delete_executions("foo")
    assert await ids(store, "foo-bar") == ["0002-node1"]
    await store.put_execution(execution("foo", 3))
    await store.delete_job("foo")
    assert await ids(store, "foo-bar") == ["0002-node1"]


async def test_deleting_a_job_removes_its_history(store: Store) -> None:
    await store.set_job(job("a"))
    await store.put_execution(execution("a", 1))
    await store.record_missed(MissedTick("a", T0, MissReason.OVERLAP, T0))
    await store.set_cursor("a", T0)
    await store.delete_job("a")
    await store.set_job(job("a"))
    assert await ids(store, "a") == []
    assert await store.list_missed("a") == []
    assert await store.get_cursor("a") is None


# --- retention ------------------------------------------------------------------------------


async def test_retention_keeps_the_newest_by_count(store: Store) -> None:
    await store.set_job(job("a", retention_count=3))
    for n in range(6):
        await store.put_execution(execution("a", n, group=n))
    assert await ids(store, "a") == ["0005-node1", "0004-node1", "0003-node1"]
    stored = await store.get_job("a")
    assert stored.success_count == 6


async def test_retention_never_removes_running_executions(store: Store) -> None:
    await store.set_job(job("a", retention_count=2))
    await store.put_execution(execution("a", 0, RUNNING))
    for n in range(1, 5):
        await store.put_execution(execution("a", n, group=n))
    assert await ids(store, "a") == ["0004-node1", "0003-node1", "0000-node1"]
    await store.put_execution(execution("a", 0, SUCCESS))
    assert await ids(store, "a") == ["0004-node1", "0003-node1"]


async def test_retention_by_age(store: Store) -> None:
    await store.set_job(job("a", retention_age=timedelta(seconds=10)))
    for n in (0, 5, 12, 20):
        await store.put_execution(execution("a", n, group=n))
    assert await ids(store, "a") == ["0020-node1", "0012-node1"]


# --- missed ticks ---------------------------------------------------------------------------


def missed(name: str, seconds: int, reason: MissReason = MissReason.MISFIRE) -> MissedTick:
    return MissedTick(name, T0 + timedelta(seconds=seconds), reason, T0 + timedelta(hours=1))


async def test_missed_ticks_newest_first(store: Store) -> None:
    await store.set_job(job("a"))
    for s in (10, 30, 20):
        await store.record_missed(missed("a", s))
    listed = await store.list_missed("a")
    assert [m.scheduled_at for m in listed] == [T0 + timedelta(seconds=s) for s in (30, 20, 10)]
    assert listed[0] == missed("a", 30)
    assert len(await store.list_missed("a", limit=2)) == 2


async def test_missed_tick_is_one_per_scheduled_time(store: Store) -> None:
    await store.set_job(job("a"))
    await store.record_missed(missed("a", 10, MissReason.OVERLAP))
    again = attrs.evolve(missed("a", 10, MissReason.NO_TARGETS), detail="no node matches")
    await store.record_missed(again)
    assert await store.list_missed("a") == [again]


async def test_missed_ticks_follow_retention(store: Store) -> None:
    await store.set_job(job("a", retention_count=2, retention_age=timedelta(seconds=100)))
    for s in (0, 10, 20):
        await store.record_missed(missed("a", s))
    assert [m.scheduled_at for m in await store.list_missed("a")] == [
        T0 + timedelta(seconds=20),
        T0 + timedelta(seconds=10),
    ]
    await store.record_missed(missed("a", 115))
    assert [m.scheduled_at for m in await store.list_missed("a")] == [
        T0 + timedelta(seconds=115),
        T0 + timedelta(seconds=20),
    ]


async def test_missed_ticks_of_unknown_job(store: Store) -> None:
    with pytest.raises(JobNotFound):
        await store.record_missed(missed("ghost", 0))
    with pytest.raises(JobNotFound):
        await store.list_missed("ghost")


# --- cursors --------------------------------------------------------------------------------


async def test_cursor_round_trip(store: Store) -> None:
    await store.set_job(job("a"))
    assert await store.get_cursor("a") is None
    t = T0 + timedelta(seconds=1, microseconds=7)
    await store.set_cursor("a", t)
    assert await store.get_cursor("a") == t
    await store.set_cursor("a", T0)
    assert await store.get_cursor("a") == T0


async def test_schedule_state_holds_every_job_with_its_cursor(store: Store) -> None:
    assert await store.schedule_state() == []
    for name in ("a", "b", "c"):
        await store.set_job(job(name))
    await store.set_cursor("b", T0 + timedelta(seconds=2))
    await store.delete_job("c")
    state = sorted(await store.schedule_state(), key=lambda pair: pair[0].name)
    assert [(j.name, cursor) for j, cursor in state] == [
        ("a", None),
        ("b", T0 + timedelta(seconds=2)),
    ]
    assert state[0][0] == await store.get_job("a")


async def test_cursor_of_unknown_job(store: Store) -> None:
    with pytest.raises(JobNotFound):
        await store.get_cursor("ghost")
    with pytest.raises(JobNotFound):
        await store.set_cursor("ghost", T0)


async def test_close_is_idempotent(store: Store) -> None:
    await store.close()
    await store.close()


async def test_naive_datetimes_are_refused(store: Store) -> None:
    naive = T0.replace(tzinfo=None)
    with pytest.raises(ValidationError):
        await store.set_job(job("a", created_at=naive))
    await store.set_job(job("a"))
    with pytest.raises(ValidationError):
        await store.put_execution(attrs.evolve(execution("a", 1), started_at=naive))
    with pytest.raises(ValidationError):
        await store.record_missed(MissedTick("a", naive, MissReason.PAUSED, T0))
    with pytest.raises(ValidationError):
        await store.set_cursor("a", naive)
    assert await ids(store, "a") == []
    assert await store.get_cursor("a") is None
