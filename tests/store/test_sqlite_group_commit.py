"""Group commit: concurrent mutations share one transaction, and a refused one spoils none."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
import trio.testing

from dkron_trio.job import Job
from dkron_trio.store.base import JobNotFound, JobQuery, ParentNotFound
from dkron_trio.store.rules import StoreTx
from dkron_trio.store.sqlite import open_sqlite_store

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _job(name: str, **fields: object) -> Job:
    return Job.from_json(
        {
            "name": name,
            "schedule": "@every 1m",
            "executor": "shell",
            "executor_config": {"command": "true"},
            **fields,
        },
        now=NOW,
    )


async def test_concurrent_writes_share_commits_and_errors_stay_private(tmp_path: Path) -> None:
    commits = 0
    async with open_sqlite_store(tmp_path / "state.db") as store:

        def trace(sql: str) -> None:
            nonlocal commits
            commits += sql == "COMMIT"

        store._conn.set_trace_callback(trace)
        errors: list[Exception] = []

        async def write(i: int) -> None:
            fields = {"parent_job": "missing"} if i == 7 else {}
            try:
                await store.set_job(_job(f"job-{i}", **fields))
            except ParentNotFound as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(write, i)
        page = await store.list_jobs(JobQuery())

    assert len(errors) == 1
    assert page.total == 49 and "job-7" not in {j.name for j in page.jobs}
    assert 1 <= commits < 50


async def test_sequential_writes_each_commit(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "state.db") as store:
        for i in range(3):
            await store.set_job(_job(f"job-{i}"))
    async with open_sqlite_store(tmp_path / "state.db") as store:
        assert (await store.list_jobs(JobQuery())).total == 3


async def test_single_write_error_is_raised(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "state.db") as store:
        with pytest.raises(ParentNotFound):
            await store.set_job(_job("child", parent_job="nope"))
        assert (await store.list_jobs(JobQuery())).total == 0


async def test_writer_cancelled_while_waiting_leaves_nothing(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "state.db") as store:
        waiting = trio.CancelScope()

        async def second() -> None:
            with waiting:
                await store.set_job(_job("second"))

        # Holding the worker thread keeps "first" committing while "second" waits.
        async with trio.open_nursery() as nursery, store._limiter:
            nursery.start_soon(store.set_job, _job("first"))
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(second)
            await trio.testing.wait_all_tasks_blocked()
            waiting.cancel()
            await trio.testing.wait_all_tasks_blocked()
        await store.set_job(_job("third"))  # the queue still moves after a cancelled waiter
        names = {j.name for j in (await store.list_jobs(JobQuery())).jobs}
    assert names == {"first", "third"}


async def test_committer_cancelled_before_its_commit_began_strands_no_other_writer(
    tmp_path: Path,
) -> None:
    """The writer that takes a group to commit may be cancelled while it waits for the
    thread: the others of its group go back to the queue and are committed by the next."""
    async with open_sqlite_store(tmp_path / "state.db") as store:
        scopes = {name: trio.CancelScope() for name in ("first", "committer")}

        async def write(name: str) -> None:
            with scopes.get(name, trio.CancelScope()):
                await store.set_job(_job(name))

        await store._limiter.acquire()  # the thread is busy: commits wait for it
        async with trio.open_nursery() as nursery:
            for name in ("first", "committer", "second", "third"):
                nursery.start_soon(write, name)
                await trio.testing.wait_all_tasks_blocked()
            scopes["first"].cancel()  # "committer" takes the group of the three waiting
            await trio.testing.wait_all_tasks_blocked()
            scopes["committer"].cancel()
            await trio.testing.wait_all_tasks_blocked()
            store._limiter.release()
            with trio.fail_after(10):  # stranded writers would spin here forever
                await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        names = {j.name for j in (await store.list_jobs(JobQuery())).jobs}
    assert names == {"second", "third"}


async def test_reads_from_the_cache_see_committed_jobs_only(tmp_path: Path) -> None:
    """A cached job is answered without a trip to the thread while no batch is in flight;
    a batch that fails leaves nothing of itself in the cache."""
    async with open_sqlite_store(tmp_path / "state.db") as store:
        await store.set_job(_job("a", owner="first"))
        statements: list[str] = []
        store._conn.set_trace_callback(statements.append)
        assert (await store.get_job("a")).owner == "first"
        assert statements == []

        def save_then_fail(tx: StoreTx) -> None:
            tx.save_job(_job("a", owner="second"))
            raise RuntimeError("refused after writing")

        with pytest.raises(RuntimeError):
            await store.apply_replicated(1, [save_then_fail])
        assert (await store.get_job("a")).owner == "first"


async def test_cursors_are_answered_from_the_cache_and_forgotten_with_their_job(
    tmp_path: Path,
) -> None:
    async with open_sqlite_store(tmp_path / "state.db") as store:
        await store.set_job(_job("a"))
        statements: list[str] = []
        store._conn.set_trace_callback(statements.append)
        assert await store.get_cursor("a") is None
        assert statements == []
        await store.set_cursor("a", NOW)
        statements.clear()
        assert await store.get_cursor("a") == NOW
        assert statements == []
        await store.delete_job("a")
        with pytest.raises(JobNotFound):
            await store.get_cursor("a")
        await store.set_job(_job("a"))
        assert await store.get_cursor("a") is None

        def move_then_fail(tx: StoreTx) -> None:
            tx.save_cursor("a", NOW)
            raise RuntimeError("refused after writing")

        with pytest.raises(RuntimeError):
            await store.apply_replicated(1, [move_then_fail])
        assert await store.get_cursor("a") is None
    async with open_sqlite_store(tmp_path / "state.db") as store:
        assert await store.get_cursor("a") is None
