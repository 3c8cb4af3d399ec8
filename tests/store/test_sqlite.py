"""SqliteStore specifics: durability, schema version, pragmas, transactions, SQL = memory."""

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import attrs
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dkron_trio.execution import ExecutionStatus, MissedTick, MissReason
from dkron_trio.job import Job, JobStatus
from dkron_trio.store import rules, sqlite_cache
from dkron_trio.store.base import (
    ExecutionNotFound,
    ExecutionQuery,
    JobQuery,
    SortOrder,
    StoreError,
)
from dkron_trio.store.memory import MemoryStore
from dkron_trio.store.sqlite import SqliteStore, open_sqlite_store
from dkron_trio.store.sqlite_tx import SCHEMA_VERSION, connect

from .helpers import T0, execution, job


async def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with open_sqlite_store(path) as store:
        await store.set_job(job("p"))
        await store.set_job(job("c", parent_job="p", metadata={"k": "v"}))
        await store.put_execution(execution("p", 1, ExecutionStatus.FAILED, output="boom"))
        await store.put_execution(execution("p", 2, ExecutionStatus.RUNNING))
        await store.record_missed(MissedTick("p", T0, MissReason.PAUSED, T0, "paused"))
        await store.set_cursor("p", T0 + timedelta(seconds=3))
        before = await store.get_job("p")
    async with open_sqlite_store(path) as store:
        assert await store.get_job("p") == before
        assert before.dependent_jobs == ("c",)
        assert before.error_count == 1
        assert (await store.list_jobs(JobQuery(metadata={"k": "v"}))).jobs[0].name == "c"
        listed = await store.list_executions("p", ExecutionQuery())
        assert [ex.status for ex in listed] == [ExecutionStatus.RUNNING, ExecutionStatus.FAILED]
        assert listed[1].output == "boom"
        assert await store.list_missed("p") == [
            MissedTick("p", T0, MissReason.PAUSED, T0, "paused")
        ]
        assert await store.get_cursor("p") == T0 + timedelta(seconds=3)


async def test_schema_version_and_wal_are_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with open_sqlite_store(path):
        pass
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_connection_is_durable_and_enforces_foreign_keys(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "state.db"))
    try:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    finally:
        conn.close()


async def test_a_replica_of_a_durable_log_skips_fsync_even_after_a_restore(
    tmp_path: Path,
) -> None:
    async with open_sqlite_store(tmp_path / "state.db", durable=False) as store:
        await store.set_job(job("a"))
        _, image = await store.snapshot_image()
        for _ in range(2):
            assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
            await store.restore_image(image)
        assert (await store.get_job("a")).name == "a"


async def test_an_image_is_read_while_the_writer_is_busy(tmp_path: Path) -> None:
    """The image comes from a connection of its own: a snapshot of a large store must not
    hold up the writes meanwhile (nor wait for them)."""
    async with open_sqlite_store(tmp_path / "state.db", durable=False) as store:
        await store.set_job(job("a"))
        async with store._limiter:  # the writer's thread is taken
            with trio.fail_after(30):
                applied, image = await store.snapshot_image()
        async with open_sqlite_store(tmp_path / "copy.db", durable=False) as copy:
            assert await copy.restore_image(image) == applied
            assert (await copy.get_job("a")).name == "a"


async def test_an_in_memory_store_serializes_on_its_own_connection(tmp_path: Path) -> None:
    async with open_sqlite_store(":memory:") as store:
        await store.set_job(job("a"))
        _, image = await store.snapshot_image()
    async with open_sqlite_store(tmp_path / "copy.db", durable=False) as copy:
        await copy.restore_image(image)
        assert (await copy.get_job("a")).name == "a"


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with open_sqlite_store(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="schema version"):
        async with open_sqlite_store(path):
            pass


async def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(StoreError, match="not a dkron-trio state database"):
        async with open_sqlite_store(path):
            pass


async def test_failed_mutation_rolls_back(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "state.db") as store:

        def half_then_fail(tx: rules.StoreTx) -> None:
            tx.save_job(job("half"))
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await store._write(half_then_fail)
        assert (await store.list_jobs(JobQuery())).total == 0
        await store.set_job(job("after"))
        assert (await store.list_jobs(JobQuery())).total == 1


def _record(path: Path, name: str) -> tuple[dict[str, object], tuple[object, ...]]:
    """A job's JSON record and its state columns, read straight from the file."""
    conn = sqlite3.connect(path)
    try:
        doc = conn.execute("SELECT doc FROM job_docs WHERE name = ?", (name,)).fetchone()[0]
        columns = conn.execute(
            "SELECT success_count, error_count, status FROM jobs WHERE name = ?", (name,)
        ).fetchone()
    finally:
        conn.close()
    return json.loads(doc), tuple(columns)


async def test_run_bookkeeping_writes_only_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with open_sqlite_store(path) as store:
        await store.set_job(job("p"))
        await store.put_execution(execution("p", 1, ExecutionStatus.SUCCESS))
        await store.put_execution(execution("p", 2, ExecutionStatus.FAILED, group=2))
        before = await store.get_job("p")
    doc, columns = _record(path, "p")
    assert doc["success_count"] == 0  # the record was not rewritten
    assert columns == (1, 1, "failed")
    async with open_sqlite_store(path) as store:
        assert await store.get_job("p") == before
        page = await store.list_jobs(JobQuery(sort="success_count", order=SortOrder.DESC))
        assert page.jobs == [before]
        assert before.last_success is not None and before.last_error is not None
        changed = await store.set_job(attrs.evolve(before, displayname="renamed"))
        assert changed.success_count == 1
    doc, columns = _record(path, "p")
    assert (doc["success_count"], doc["error_count"], doc["status"]) == (1, 1, "failed")
    assert doc["displayname"] == "renamed"


async def test_rolled_back_bookkeeping_leaves_no_trace(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "state.db") as store:
        await store.set_job(job("p"))

        def count_then_fail(tx: rules.StoreTx) -> None:
            rules.apply_put_execution(tx, execution("p", 1, ExecutionStatus.SUCCESS))
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await store._write(count_then_fail)
        assert (await store.get_job("p")).success_count == 0
        await store.put_execution(execution("p", 2, ExecutionStatus.SUCCESS))
        assert (await store.get_job("p")).success_count == 1


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "state.db") as store:
        pass
    with pytest.raises(StoreError, match="closed"):
        await store.get_job("a")


async def test_concurrent_callers_and_cancellation(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "state.db") as store:
        with trio.CancelScope() as scope:
            scope.cancel()
            await store.set_job(job("cancelled"))
        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(store.set_job, job(f"job-{i:02d}"))
        page = await store.list_jobs(JobQuery())
        assert [j.name for j in page.jobs] == [f"job-{i:02d}" for i in range(20)]


async def test_sorted_paging_uses_an_index(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "state.db") as store:
        conn = store._conn
        for field in ("name", "next", "success_count", "last_error", "displayname"):
            plan = conn.execute(
                f'EXPLAIN QUERY PLAN SELECT name FROM jobs WHERE 1 ORDER BY "{field}" DESC,'
                " name DESC LIMIT 25 OFFSET 0"
            ).fetchall()
            assert "TEMP B-TREE" not in str(plan), (field, plan)


# --- SQL and memory agree on random data and queries ----------------------------------------

_names = st.text(alphabet="abcxyz-_1", min_size=1, max_size=6)
_meta = st.dictionaries(st.sampled_from(["env", "team"]), st.sampled_from(["a", "b"]), max_size=2)
_jobs = st.lists(
    st.builds(
        lambda name, meta, count, disabled, status, last, display: job(
            name,
            metadata=meta,
            success_count=count,
            disabled=disabled,
            status=status,
            last_success=None if last is None else T0 + timedelta(seconds=last),
            displayname=display,
        ),
        _names,
        _meta,
        st.integers(0, 3),
        st.booleans(),
        st.sampled_from(list(JobStatus)),
        st.none() | st.integers(0, 3),
        st.sampled_from(["", "Alpha", "beta", "ÄX"]),
    ),
    max_size=12,
    unique_by=lambda j: j.name,
)
_queries = st.builds(
    JobQuery,
    metadata=_meta,
    q=st.sampled_from(["", "a", "x-", "ä", "BET"]),
    status=st.none() | st.sampled_from(list(JobStatus)),
    disabled=st.none() | st.booleans(),
    sort=st.sampled_from(["name", "id", "success_count", "last_success", "status", "disabled"]),
    order=st.sampled_from(list(SortOrder)),
    start=st.integers(0, 5),
    end=st.none() | st.integers(0, 10),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs=_jobs, queries=st.lists(_queries, min_size=1, max_size=4))
async def test_sql_queries_match_the_memory_twin(jobs: list[Job], queries: list[JobQuery]) -> None:
    memory = MemoryStore()
    async with open_sqlite_store(":memory:") as sqlite_store:
        for j in jobs:
            await memory.set_job(j)
            await sqlite_store.set_job(j)
        for q in queries:
            assert await sqlite_store.list_jobs(q) == await memory.list_jobs(q)


# --- the write-path caches agree with the file ----------------------------------------------

_execution_ops = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "put", "get", "clear", "fail", "reopen"]),
        st.integers(1, 8),
        st.sampled_from(list(ExecutionStatus)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_execution_ops, keep=st.integers(1, 3), aged=st.booleans())
async def test_execution_writes_match_the_memory_twin(
    tmp_path_factory: pytest.TempPathFactory,
    ops: list[tuple[str, int, ExecutionStatus]],
    keep: int,
    aged: bool,
) -> None:
    """Cached rows, absences and counts (retention skips its DELETE on them) must leave
    the file exactly as the memory twin's dicts, also across failed batches and reopening."""
    path = tmp_path_factory.mktemp("cache") / "state.db"
    memory = MemoryStore()
    the_job = job("j", retention_count=keep, retention_age=timedelta(seconds=4) if aged else None)
    await memory.set_job(the_job)
    store = await SqliteStore.open(path)
    try:
        await store.set_job(the_job)
        for op, n, status in ops:
            if op == "put":
                ex = execution("j", n, status, group=n)
                await memory.put_execution(ex)
                await store.put_execution(ex)
            elif op == "get":
                ex_id = f"{n:04d}-node1"
                try:
                    expected: object = await memory.get_execution("j", ex_id)
                except ExecutionNotFound:
                    expected = None
                try:
                    got: object = await store.get_execution("j", ex_id)
                except ExecutionNotFound:
                    got = None
                assert got == expected
            elif op == "clear":
                assert await store.delete_executions("j") == await memory.delete_executions("j")
            elif op == "fail":

                def put_then_fail(tx: rules.StoreTx, n: int = n) -> None:
                    rules.apply_put_execution(tx, execution("j", n, ExecutionStatus.RUNNING))
                    raise RuntimeError("boom")

                with pytest.raises(RuntimeError):
                    await store._write(put_then_fail)
            else:
                await store.close()
                store = await SqliteStore.open(path)
            listed = await store.list_executions("j", ExecutionQuery())
            assert listed == await memory.list_executions("j", ExecutionQuery())
            assert await store.get_job("j") == await memory.get_job("j")
    finally:
        await store.close()


def test_known_executions_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_cache, "EXECUTION_CACHE_SIZE", 4)
    cache = sqlite_cache.JobCache()
    first = execution("a", 1)
    cache.know_execution(("a", first.id), first)
    cache.know_execution(("a", "gone"), None)
    for n in range(3):
        cache.know_execution(("b", f"{n}"), None)
    assert cache.execution(("a", first.id)) is sqlite_cache.UNKNOWN  # the oldest job gave way
    assert cache.execution(("b", "2")) is None
    for n in range(10):  # one job alone stays within the bound too
        cache.know_execution(("c", f"{n}"), None)
    assert sum(cache.execution(("c", f"{n}")) is None for n in range(10)) <= 4
    cache.drop("c")
    assert cache.execution(("c", "9")) is sqlite_cache.UNKNOWN
