"""SqliteStore: the durable store (``state.db``).

One connection, used by one operation at a time on a worker thread
(`trio.to_thread.run_sync` behind a `CapacityLimiter` of 1), in WAL mode with
``synchronous=FULL``; the schema version lives in ``PRAGMA user_version``. Every mutation is
applied by the shared rules (`dkron_trio.store.rules`) inside a savepoint, so a refused or
failed mutation leaves nothing behind. Mutations waiting while a commit is in flight are
applied together in the next transaction (group commit): one fsync serves them all, which is
what lets a scheduler firing hundreds of runs a second keep up on a slow disk. An operation
that has reached the thread finishes even if its caller is cancelled.

Jobs are kept as their JSON record plus one column per sortable field (indexed where Dkron's
UI sorts or filters) and a metadata side table, so filters, sorting and paging run in SQL.
"""

import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import attrs
import trio

from dkron_trio.execution import (
    Execution,
    ExecutionStatus,
    MissedTick,
    MissReason,
    tail_bytes_text,
)
from dkron_trio.job import Job
from dkron_trio.store import rules
from dkron_trio.store.base import (
    ExecutionNotFound,
    ExecutionQuery,
    JobNotFound,
    JobPage,
    JobQuery,
    StoreError,
)

SCHEMA_VERSION = 1

T = TypeVar("T")

_INDEXED_JOB_FIELDS = (
    "displayname",
    "schedule",
    "success_count",
    "error_count",
    "last_success",
    "last_error",
    "next",
    "status",
    "disabled",
    "created_at",
)
_JOB_FIELDS = rules.JOB_SORT_FIELDS
_JOB_COLUMN_LIST = ", ".join(f'"{f}"' for f in _JOB_FIELDS)


def _column_type(value: rules.Column) -> str:
    """SQL type of a job column, judged from a default job (None only where a field may be)."""
    if value is None:
        return "INTEGER"
    return "TEXT NOT NULL" if isinstance(value, str) else "INTEGER NOT NULL"


def _schema() -> list[str]:
    sample = rules.job_columns(Job(name="-"))
    job_columns = [f'"{f}" {_column_type(sample[f])}' for f in _JOB_FIELDS]
    job_columns[_JOB_FIELDS.index("name")] = '"name" TEXT NOT NULL PRIMARY KEY'
    statements = [
        "CREATE TABLE jobs ("
        + ", ".join(
            [
                *job_columns,
                "name_fold TEXT NOT NULL",
                "display_fold TEXT NOT NULL",
                "cursor INTEGER",
            ]
        )
        + ")",
        "CREATE INDEX jobs_search ON jobs (name_fold, display_fold)",
        "CREATE TABLE job_docs ("
        " name TEXT NOT NULL PRIMARY KEY REFERENCES jobs(name) ON DELETE CASCADE,"
        " doc TEXT NOT NULL)",
        "CREATE TABLE job_metadata ("
        " job TEXT NOT NULL REFERENCES jobs(name) ON DELETE CASCADE,"
        " key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (job, key))",
        "CREATE INDEX job_metadata_by_pair ON job_metadata (key, value, job)",
        "CREATE TABLE executions ("
        " job_name TEXT NOT NULL REFERENCES jobs(name) ON DELETE CASCADE,"
        " id TEXT NOT NULL, started_at INTEGER NOT NULL, finished_at INTEGER,"
        " success INTEGER NOT NULL, output TEXT NOT NULL, node_name TEXT NOT NULL,"
        ' "group" INTEGER NOT NULL, attempt INTEGER NOT NULL, scheduled_at INTEGER,'
        " fence INTEGER NOT NULL, status TEXT NOT NULL, exit_code INTEGER,"
        " output_truncated INTEGER NOT NULL, PRIMARY KEY (job_name, id))",
        "CREATE INDEX executions_by_start ON executions (job_name, started_at, id)",
        'CREATE INDEX executions_by_group ON executions (job_name, "group")'
        " WHERE status != 'running'",
        "CREATE INDEX executions_running ON executions (started_at) WHERE status = 'running'",
        "CREATE TABLE missed ("
        " job_name TEXT NOT NULL REFERENCES jobs(name) ON DELETE CASCADE,"
        " scheduled_at INTEGER NOT NULL, reason TEXT NOT NULL, recorded_at INTEGER NOT NULL,"
        " detail TEXT NOT NULL, PRIMARY KEY (job_name, scheduled_at))",
    ]
    statements += [f'CREATE INDEX jobs_by_{f} ON jobs ("{f}", name)' for f in _INDEXED_JOB_FIELDS]
    statements.append(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return statements


_EXECUTION_FIELDS = (
    "job_name, id, started_at, finished_at, success, output, node_name, "
    '"group", attempt, scheduled_at, fence, status, exit_code, output_truncated'
)
_EXECUTION_UPDATES = ", ".join(
    f"{c} = excluded.{c}" for c in _EXECUTION_FIELDS.split(", ") if c not in ("job_name", "id")
)
_JOB_UPDATES = ", ".join(
    f"{c} = excluded.{c}"
    for c in [*(f'"{f}"' for f in _JOB_FIELDS if f != "name"), "name_fold", "display_fold"]
)


def _opt_micros(t: datetime | None) -> int | None:
    return None if t is None else rules.micros(t)


def _opt_time(value: int | None) -> datetime | None:
    return None if value is None else rules.from_micros(value)


def _execution_row(ex: Execution) -> tuple[Any, ...]:
    return (
        ex.job_name,
        ex.id,
        rules.micros(ex.started_at),
        _opt_micros(ex.finished_at),
        int(ex.success),
        ex.output,
        ex.node_name,
        ex.group,
        ex.attempt,
        _opt_micros(ex.scheduled_at),
        ex.fence,
        ex.status.value,
        ex.exit_code,
        int(ex.output_truncated),
    )


def _execution(row: Sequence[Any]) -> Execution:
    output = row[5]
    truncated = bool(row[13])
    if isinstance(output, bytes):
        output = tail_bytes_text(output)
        truncated = True
    return Execution(
        job_name=row[0],
        id=row[1],
        started_at=rules.from_micros(row[2]),
        finished_at=_opt_time(row[3]),
        success=bool(row[4]),
        output=output,
        node_name=row[6],
        group=row[7],
        attempt=row[8],
        scheduled_at=_opt_time(row[9]),
        fence=row[10],
        status=ExecutionStatus(row[11]),
        exit_code=row[12],
        output_truncated=truncated,
    )


JOB_CACHE_SIZE = 20_000
"""Decoded jobs kept in memory; beyond it the oldest entry gives way."""


def _job(doc: str) -> Job:
    return Job.from_record(json.loads(doc))


@attrs.define
class _JobCache:
    """Decoded jobs by name, so the hot path (cursors, executions) skips JSON decoding.

    Only this store's one connection writes the file, so the cache is coherent as long as
    every write passes through `_SqliteTx.save_job`/`remove_job` and a rollback clears it.
    """

    _jobs: dict[str, Job] = attrs.field(factory=dict)
    _limit: int = JOB_CACHE_SIZE

    def get(self, name: str) -> Job | None:
        return self._jobs.get(name)

    def put(self, job: Job) -> None:
        if job.name not in self._jobs and len(self._jobs) >= self._limit:
            del self._jobs[next(iter(self._jobs))]
        self._jobs[job.name] = job

    def drop(self, name: str) -> None:
        self._jobs.pop(name, None)

    def clear(self) -> None:
        self._jobs.clear()


@attrs.define
class _SqliteTx:
    """`rules.StoreTx` over the open connection (inside a transaction)."""

    _conn: sqlite3.Connection
    _cache: _JobCache

    def load_job(self, name: str) -> Job | None:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        row = self._conn.execute("SELECT doc FROM job_docs WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        job = _job(row[0])
        self._cache.put(job)
        return job

    def save_job(self, job: Job) -> None:
        self._cache.put(job)
        columns = rules.job_columns(job)
        values = [columns[f] for f in _JOB_FIELDS]
        doc = json.dumps(job.to_json(), separators=(",", ":"), ensure_ascii=False)
        values += [rules.search_text(job.name), rules.search_text(job.displayname)]
        marks = ", ".join("?" * len(values))
        self._conn.execute(
            f"INSERT INTO jobs ({_JOB_COLUMN_LIST}, name_fold, display_fold)"
            f" VALUES ({marks}) ON CONFLICT (name) DO UPDATE SET {_JOB_UPDATES}",
            values,
        )
        self._conn.execute(
            "INSERT INTO job_docs (name, doc) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
            (job.name, doc),
        )
        self._conn.execute("DELETE FROM job_metadata WHERE job = ?", (job.name,))
        self._conn.executemany(
            "INSERT INTO job_metadata (job, key, value) VALUES (?, ?, ?)",
            [(job.name, k, v) for k, v in job.metadata.items()],
        )

    def remove_job(self, name: str) -> None:
        self._cache.drop(name)
        self._conn.execute("DELETE FROM jobs WHERE name = ?", (name,))

    def load_execution(self, job_name: str, execution_id: str) -> Execution | None:
        row = self._conn.execute(
            f"SELECT {_EXECUTION_FIELDS} FROM executions WHERE job_name = ? AND id = ?",
            (job_name, execution_id),
        ).fetchone()
        return None if row is None else _execution(row)

    def save_execution(self, ex: Execution) -> None:
        self._conn.execute(
            f"INSERT INTO executions ({_EXECUTION_FIELDS}) VALUES ({', '.join('?' * 14)})"
            f" ON CONFLICT (job_name, id) DO UPDATE SET {_EXECUTION_UPDATES}",
            _execution_row(ex),
        )

    def latest_run(self, job_name: str) -> list[Execution]:
        fields = _EXECUTION_FIELDS.replace("output,", "'' AS output,")
        rows = self._conn.execute(
            f"SELECT {fields} FROM executions WHERE job_name = ? AND status != 'running'"
            ' AND "group" = (SELECT max("group") FROM executions'
            "  WHERE job_name = ? AND status != 'running')",
            (job_name, job_name),
        ).fetchall()
        return [_execution(row) for row in rows]

    def prune_executions(self, job_name: str, keep: int, before: datetime | None) -> None:
        self._conn.execute(
            "DELETE FROM executions WHERE job_name = ? AND status != 'running' AND ("
            " started_at < ? OR id IN (SELECT id FROM executions WHERE job_name = ?"
            "  ORDER BY started_at DESC, id DESC LIMIT -1 OFFSET ?))",
            (job_name, _opt_micros(before), job_name, keep),
        )

    def clear_executions(self, job_name: str) -> int:
        cursor = self._conn.execute("DELETE FROM executions WHERE job_name = ?", (job_name,))
        return cursor.rowcount

    def save_missed(self, m: MissedTick) -> None:
        self._conn.execute(
            "INSERT INTO missed (job_name, scheduled_at, reason, recorded_at, detail)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_name, scheduled_at) DO UPDATE SET"
            " reason = excluded.reason, recorded_at = excluded.recorded_at,"
            " detail = excluded.detail",
            (
                m.job_name,
                rules.micros(m.scheduled_at),
                m.reason.value,
                rules.micros(m.recorded_at),
                m.detail,
            ),
        )

    def prune_missed(self, job_name: str, keep: int, before: datetime | None) -> None:
        self._conn.execute(
            "DELETE FROM missed WHERE job_name = ? AND ("
            " scheduled_at < ? OR scheduled_at IN (SELECT scheduled_at FROM missed"
            "  WHERE job_name = ? ORDER BY scheduled_at DESC LIMIT -1 OFFSET ?))",
            (job_name, _opt_micros(before), job_name, keep),
        )

    def load_cursor(self, job_name: str) -> datetime | None:
        row = self._conn.execute("SELECT cursor FROM jobs WHERE name = ?", (job_name,)).fetchone()
        return None if row is None else _opt_time(row[0])

    def save_cursor(self, job_name: str, t: datetime) -> None:
        self._conn.execute("UPDATE jobs SET cursor = ? WHERE name = ?", (rules.micros(t), job_name))


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise StoreError(f"{path} is not a dkron-trio state database")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _schema():
                conn.execute(statement)
            conn.execute("COMMIT")
        elif version != SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema version {version}; this build reads version {SCHEMA_VERSION}"
            )
    except BaseException:
        conn.close()
        raise
    return conn


@attrs.define
class _PendingWrite(Generic[T]):
    """One mutation waiting for a group commit, and then its outcome."""

    fn: Callable[[rules.StoreTx], T]
    done: bool = False
    result: T | None = None
    error: Exception | None = None
    wake: trio.Event = attrs.field(factory=trio.Event)


def _apply_batch(
    conn: sqlite3.Connection, cache: _JobCache, batch: "list[_PendingWrite[Any]]"
) -> None:
    """Run every mutation in its own savepoint of one transaction, then commit once."""
    tx = _SqliteTx(conn, cache)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for item in batch:
            conn.execute("SAVEPOINT one")
            try:
                item.result = item.fn(tx)
            except Exception as exc:  # the caller gets it; the others still commit
                conn.execute("ROLLBACK TO one")
                cache.clear()
                item.error = exc
            conn.execute("RELEASE one")
        conn.execute("COMMIT")
    except BaseException as exc:
        cache.clear()
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        for item in batch:
            item.result, item.error = None, StoreError(f"commit failed: {exc}")
        raise
    finally:
        for item in batch:
            item.done = True


@attrs.define
class SqliteStore:
    """`Store` in one SQLite file. Open it with `open_sqlite_store`."""

    _conn: sqlite3.Connection
    _limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))
    _closed: bool = False
    _pending: "list[_PendingWrite[Any]]" = attrs.field(factory=list)
    _committing: bool = False
    _cache: _JobCache = attrs.field(factory=_JobCache)

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> "SqliteStore":
        conn = await trio.to_thread.run_sync(_connect, os.fspath(path))
        return cls(conn)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("store is closed")
        return await trio.to_thread.run_sync(fn, self._conn, limiter=self._limiter)

    async def _write(self, fn: Callable[[rules.StoreTx], T]) -> T:
        """Apply ``fn`` in the next group commit and return its result or raise its error.

        Whoever finds no commit in flight commits everything pending; the others sleep on
        their own event, so a long queue costs one wake-up per write, not one per commit.
        A caller cancelled before its batch started leaves nothing behind.
        """
        item: _PendingWrite[T] = _PendingWrite(fn)
        self._pending.append(item)
        while not item.done:
            if self._committing:
                try:
                    await item.wake.wait()
                except BaseException:
                    if not item.done and item in self._pending:
                        self._pending.remove(item)
                        self._hand_over()
                    raise
                item.wake = trio.Event()
            else:
                await self._commit_pending()
        if item.error is not None:
            raise item.error
        return cast(T, item.result)

    async def _commit_pending(self) -> None:
        batch, self._pending = self._pending, []
        self._committing = True
        try:
            await self._run(lambda conn: _apply_batch(conn, self._cache, batch))
        finally:
            self._committing = False
            for item in batch:
                item.wake.set()
            self._hand_over()

    def _hand_over(self) -> None:
        """Wake the oldest waiting writer to commit the next batch, if nobody is committing."""
        if not self._committing and self._pending:
            self._pending[0].wake.set()

    async def _read(self, fn: Callable[[_SqliteTx], T]) -> T:
        def read(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN")
            try:
                return fn(_SqliteTx(conn, self._cache))
            finally:
                conn.execute("COMMIT")

        return await self._run(read)

    async def set_job(self, job: Job) -> Job:
        return await self._write(lambda tx: rules.apply_set_job(tx, job))

    async def get_job(self, name: str) -> Job:
        return await self._read(lambda tx: rules.require_job(tx, name))

    async def delete_job(self, name: str) -> Job:
        return await self._write(lambda tx: rules.apply_delete_job(tx, name))

    async def list_jobs(self, q: JobQuery) -> JobPage:
        field = rules.job_sort_field(q)

        def query(conn: sqlite3.Connection) -> JobPage:
            where, params = _job_filter(conn, q)
            total = conn.execute(f"SELECT count(*) FROM jobs WHERE {where}", params).fetchone()[0]
            direction = q.order.value.upper()
            limit = -1 if q.end is None else max(q.end - q.start, 0)
            names = [
                row[0]
                for row in conn.execute(
                    f"SELECT name FROM jobs WHERE {where}"
                    f' ORDER BY "{field}" {direction}, name {direction} LIMIT ? OFFSET ?',
                    [*params, limit, q.start],
                )
            ]
            return JobPage(_load_docs(conn, names), total)

        return await self._run(query)

    async def put_execution(self, ex: Execution) -> None:
        await self._write(lambda tx: rules.apply_put_execution(tx, ex))

    async def get_execution(self, job_name: str, execution_id: str) -> Execution:
        def get(tx: _SqliteTx) -> Execution:
            rules.require_job(tx, job_name)
            ex = tx.load_execution(job_name, execution_id)
            if ex is None:
                raise ExecutionNotFound(job_name, execution_id)
            return ex

        return await self._read(get)

    async def list_executions(self, job_name: str, q: ExecutionQuery) -> list[Execution]:
        field = f'"{rules.execution_sort_field(q)}"'
        direction = q.order.value.upper()
        output = "output"
        params: list[Any] = []
        if q.output_size_limit is not None:
            output = (
                "CASE WHEN length(CAST(output AS BLOB)) <= ? THEN output"
                " ELSE substr(CAST(output AS BLOB), length(CAST(output AS BLOB)) - ? + 1) END"
            )
            params = [q.output_size_limit, q.output_size_limit]
        fields = _EXECUTION_FIELDS.replace("output,", f"{output},")

        def query(conn: sqlite3.Connection) -> list[Execution]:
            if conn.execute("SELECT 1 FROM jobs WHERE name = ?", (job_name,)).fetchone() is None:
                raise JobNotFound(job_name)
            rows = conn.execute(
                f"SELECT {fields} FROM executions WHERE job_name = ?"
                f" ORDER BY {field} {direction}, id {direction} LIMIT ?",
                [*params, job_name, -1 if q.limit is None else q.limit],
            ).fetchall()
            return [_execution(row) for row in rows]

        return await self._run(query)

    async def running_executions(self, job_name: str | None = None) -> list[Execution]:
        def query(conn: sqlite3.Connection) -> list[Execution]:
            sql = f"SELECT {_EXECUTION_FIELDS} FROM executions WHERE status = 'running'"
            params: tuple[str, ...] = ()
            if job_name is not None:
                sql += " AND job_name = ?"
                params = (job_name,)
            rows = conn.execute(sql + " ORDER BY started_at, job_name, id", params).fetchall()
            return [_execution(row) for row in rows]

        return await self._run(query)

    async def delete_executions(self, job_name: str) -> int:
        return await self._write(lambda tx: rules.apply_delete_executions(tx, job_name))

    async def record_missed(self, m: MissedTick) -> None:
        await self._write(lambda tx: rules.apply_record_missed(tx, m))

    async def list_missed(self, job_name: str, limit: int = 100) -> list[MissedTick]:
        def query(conn: sqlite3.Connection) -> list[MissedTick]:
            if conn.execute("SELECT 1 FROM jobs WHERE name = ?", (job_name,)).fetchone() is None:
                raise JobNotFound(job_name)
            rows = conn.execute(
                "SELECT scheduled_at, reason, recorded_at, detail FROM missed"
                " WHERE job_name = ? ORDER BY scheduled_at DESC LIMIT ?",
                (job_name, max(limit, 0)),
            ).fetchall()
            return [
                MissedTick(
                    job_name,
                    rules.from_micros(at),
                    MissReason(reason),
                    rules.from_micros(recorded),
                    detail,
                )
                for at, reason, recorded, detail in rows
            ]

        return await self._run(query)

    async def get_cursor(self, job_name: str) -> datetime | None:
        def get(tx: _SqliteTx) -> datetime | None:
            rules.require_job(tx, job_name)
            return tx.load_cursor(job_name)

        return await self._read(get)

    async def set_cursor(self, job_name: str, t: datetime) -> None:
        await self._write(lambda tx: rules.apply_set_cursor(tx, job_name, t))

    async def record_plan(
        self,
        job_name: str,
        cursor: datetime,
        missed: Sequence[MissedTick],
        started: Sequence[Execution],
    ) -> None:
        await self._write(
            lambda tx: rules.apply_record_plan(tx, job_name, cursor, missed, started)
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await trio.to_thread.run_sync(self._conn.close, limiter=self._limiter)


_DOC_BATCH = 500


def _load_docs(conn: sqlite3.Connection, names: list[str]) -> list[Job]:
    """The jobs named, in that order (fetched after sorting, so sorts never carry documents)."""
    docs: dict[str, str] = {}
    for i in range(0, len(names), _DOC_BATCH):
        batch = names[i : i + _DOC_BATCH]
        marks = ", ".join("?" * len(batch))
        docs.update(conn.execute(f"SELECT name, doc FROM job_docs WHERE name IN ({marks})", batch))
    return [_job(docs[name]) for name in names]


def _job_filter(conn: sqlite3.Connection, q: JobQuery) -> tuple[str, list[Any]]:
    """WHERE clause and parameters. Metadata: the rarest pair drives, the others are probed."""
    clauses = ["1"]
    params: list[Any] = []
    if q.status is not None:
        clauses.append("status = ?")
        params.append(q.status.value)
    if q.disabled is not None:
        clauses.append("disabled = ?")
        params.append(int(q.disabled))
    if q.q:
        clauses.append("(instr(name_fold, ?) > 0 OR instr(display_fold, ?) > 0)")
        needle = rules.search_text(q.q)
        params += [needle, needle]
    pairs = sorted(q.metadata.items(), key=lambda pair: _pair_count(conn, *pair))
    for n, (key, value) in enumerate(pairs):
        if n == 0:
            clauses.append("name IN (SELECT job FROM job_metadata WHERE key = ? AND value = ?)")
        else:
            clauses.append(
                "EXISTS (SELECT 1 FROM job_metadata AS m"
                " WHERE m.job = jobs.name AND m.key = ? AND m.value = ?)"
            )
        params += [key, value]
    return " AND ".join(clauses), params


def _pair_count(conn: sqlite3.Connection, key: str, value: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM job_metadata WHERE key = ? AND value = ?", (key, value)
    ).fetchone()
    count: int = row[0]
    return count


@asynccontextmanager
async def open_sqlite_store(path: str | os.PathLike[str]) -> AsyncIterator[SqliteStore]:
    """Open (creating if needed) the store at ``path``; closed on exit, even when cancelled."""
    store = await SqliteStore.open(path)
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store.close()
