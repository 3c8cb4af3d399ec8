"""SqliteStore: the durable store (``state.db``).

One connection, used by one operation at a time on a worker thread
(`trio.to_thread.run_sync` behind a `CapacityLimiter` of 1), in WAL mode with
``synchronous=FULL`` (``NORMAL`` when it replicates a durable log); the schema version lives
in ``PRAGMA user_version``. Every mutation is applied by the shared rules
(`dkron_trio.store.rules`) inside a savepoint, so a refused or failed mutation leaves
nothing behind. Mutations waiting while a commit is in flight are applied together in the
next transaction (group commit): one fsync serves them all, which is what lets a scheduler
firing hundreds of runs a second keep up on a slow disk. Point reads (a job, an execution, a
cursor) join the same groups: each run reads its job back when it ends, and a trip to the
thread per read, queued behind the commits, would cap the runs per second at the thread
round trips per second. A read answers once its group has committed, so it never sees a
write that is not durable; a job the cache holds is answered at once while no group is in
flight (the cache then holds committed state only: a batch that fails clears it). An
operation that has reached the thread finishes even if its caller is cancelled.

The file's layout and the transaction object the rules run against live in `sqlite_tx`.
"""

import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any, Generic, TypeVar, cast

import attrs
import trio

from dkron_trio.acl import AclToken
from dkron_trio.durable import fsync_dir
from dkron_trio.execution import (
    Execution,
    MissedTick,
    MissReason,
)
from dkron_trio.job import Job
from dkron_trio.store import rules
from dkron_trio.store.base import (
    ExecutionNotFound,
    ExecutionQuery,
    JobNotFound,
    JobPage,
    JobQuery,
    PlanRecord,
    PlansRecorded,
    RaftMember,
    StoreError,
)
from dkron_trio.store.replica import Mutation, check_index
from dkron_trio.store.sqlite_cache import UNKNOWN, JobCache
from dkron_trio.store.sqlite_image import stage_empty, stage_image
from dkron_trio.store.sqlite_tx import (
    EXECUTION_FIELDS,
    JOB_READ,
    SqliteTx,
    connect,
    execution_from_row,
    job_from_row,
)

T = TypeVar("T")


@attrs.define
class _Pending(Generic[T]):
    """One operation waiting for a group commit, and then its outcome. A read-only one
    changes nothing, so its error spoils nothing else in the group."""

    fn: Callable[[SqliteTx], T]
    read_only: bool
    done: bool = False
    result: T | None = None
    error: Exception | None = None
    wake: trio.Event = attrs.field(factory=trio.Event)


def _apply_batch(conn: sqlite3.Connection, cache: JobCache, batch: "list[_Pending[Any]]") -> None:
    """Run every mutation in one transaction, then commit once.

    Mutations are tried all together first, without savepoints (two statements fewer per
    mutation). If one raises, that attempt is rolled back and the batch runs again with a
    savepoint around each mutation, so the failing one leaves nothing and the others
    commit (the rules are deterministic over the store's state: a second run of the
    same mutations on the same state does the same).
    """
    tx = SqliteTx(conn, cache)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _apply_all(tx, batch):
            conn.execute("ROLLBACK")
            cache.clear()
            conn.execute("BEGIN IMMEDIATE")
            _apply_each(conn, cache, tx, batch)
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


def _apply_all(tx: SqliteTx, batch: "list[_Pending[Any]]") -> bool:
    """Apply the batch in order; False (at once) when a mutation raises."""
    for item in batch:
        try:
            item.result = item.fn(tx)
        except Exception as exc:
            if not item.read_only:
                return False
            item.error = exc
    return True


def _apply_each(
    conn: sqlite3.Connection, cache: JobCache, tx: SqliteTx, batch: "list[_Pending[Any]]"
) -> None:
    """Apply each mutation in its own savepoint; one that raises leaves nothing behind."""
    for item in batch:
        item.result, item.error = None, None
        conn.execute("SAVEPOINT one")
        try:
            item.result = item.fn(tx)
        except Exception as exc:  # the caller gets it; the others still commit
            conn.execute("ROLLBACK TO one")
            cache.clear()
            item.error = exc
        conn.execute("RELEASE one")


@attrs.define
class SqliteStore:
    """`Store` in one SQLite file. Open it with `open_sqlite_store`."""

    _conn: sqlite3.Connection
    _path: str
    _durable: bool = True
    """False: a replica of a durable log, whose commits are not fsync'd (`connect`)."""
    _limiter: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(1))
    _closed: bool = False
    _pending: "list[_Pending[Any]]" = attrs.field(factory=list)
    _committing: bool = False
    _cache: JobCache = attrs.field(factory=JobCache)
    _imaging: trio.Lock = attrs.field(factory=trio.Lock)
    """Held while an image is read (on a connection of its own) or restored: a restore
    closes the last connection to drop the old WAL, so none may be open beside it."""

    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, durable: bool = True) -> "SqliteStore":
        """``durable=False`` for a replica of a durable log (`connect`)."""
        conn = await trio.to_thread.run_sync(partial(connect, os.fspath(path), durable=durable))
        return cls(conn, os.fspath(path), durable)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreError("store is closed")
        return await trio.to_thread.run_sync(fn, self._conn, limiter=self._limiter)

    async def _write(self, fn: Callable[[SqliteTx], T], *, read_only: bool = False) -> T:
        """Apply ``fn`` in the next group commit and return its result or raise its error.

        Whoever finds no commit in flight commits everything pending; the others sleep on
        their own event, so a long queue costs one wake-up per write, not one per commit.
        A caller cancelled before its batch started leaves nothing behind.
        """
        item: _Pending[T] = _Pending(fn, read_only)
        self._pending.append(item)
        try:
            while not item.done:
                if self._committing:
                    await item.wake.wait()
                    item.wake = trio.Event()
                else:
                    await self._commit_pending()
        except BaseException:
            if not item.done and item in self._pending:
                self._pending.remove(item)
                self._hand_over()
            raise
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
            # Cancelled before the thread took the batch: it goes back to the head of the
            # queue, for the next committer (else its other writers would wait forever).
            self._pending[:0] = [item for item in batch if not item.done]
            for item in batch:
                item.wake.set()
            self._hand_over()

    def _hand_over(self) -> None:
        """Wake the oldest waiting writer to commit the next batch, if nobody is committing."""
        if not self._committing and self._pending:
            self._pending[0].wake.set()

    async def _read(self, fn: Callable[[SqliteTx], T]) -> T:
        """A point read, answered in the next group (see the module docstring)."""
        return await self._write(fn, read_only=True)

    async def set_job(self, job: Job) -> Job:
        return await self._write(lambda tx: rules.apply_set_job(tx, job))

    async def get_job(self, name: str) -> Job:
        if not self._committing:  # no batch in flight: the cache holds only committed jobs
            cached = self._cache.get(name)
            if cached is not None:
                await trio.lowlevel.checkpoint()
                return cached
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
        def get(tx: SqliteTx) -> Execution:
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
        fields = EXECUTION_FIELDS.replace("output,", f"{output},")

        def query(conn: sqlite3.Connection) -> list[Execution]:
            if conn.execute("SELECT 1 FROM jobs WHERE name = ?", (job_name,)).fetchone() is None:
                raise JobNotFound(job_name)
            rows = conn.execute(
                f"SELECT {fields} FROM executions WHERE job_name = ?"
                f" ORDER BY {field} {direction}, id {direction} LIMIT ?",
                [*params, job_name, -1 if q.limit is None else q.limit],
            ).fetchall()
            return [execution_from_row(row) for row in rows]

        return await self._run(query)

    async def running_executions(self, job_name: str | None = None) -> list[Execution]:
        def query(conn: sqlite3.Connection) -> list[Execution]:
            sql = f"SELECT {EXECUTION_FIELDS} FROM executions WHERE status = 'running'"
            params: tuple[str, ...] = ()
            if job_name is not None:
                sql += " AND job_name = ?"
                params = (job_name,)
            rows = conn.execute(sql + " ORDER BY started_at, job_name, id", params).fetchall()
            return [execution_from_row(row) for row in rows]

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
        if not self._committing and self._cache.get(job_name) is not None:  # see get_job
            known = self._cache.cursor(job_name)
            if known is not UNKNOWN:
                await trio.lowlevel.checkpoint()
                return known

        def get(tx: SqliteTx) -> datetime | None:
            rules.require_job(tx, job_name)
            return tx.load_cursor(job_name)

        return await self._read(get)

    async def schedule_state(self) -> list[tuple[Job, datetime | None]]:
        return await self._read(lambda tx: tx.schedule_state())

    async def set_cursor(self, job_name: str, t: datetime) -> None:
        await self._write(lambda tx: rules.apply_set_cursor(tx, job_name, t))

    async def record_plans(self, plans: Sequence[PlanRecord]) -> PlansRecorded:
        refused = await self._write(lambda tx: rules.apply_record_plans(tx, plans))
        return PlansRecorded(None, refused)

    async def put_token(self, token: AclToken, *, bootstrap: bool = False) -> None:
        await self._write(lambda tx: rules.apply_set_token(tx, token, bootstrap))

    async def delete_token(self, token_id: str) -> AclToken:
        return await self._write(lambda tx: rules.apply_delete_token(tx, token_id))

    async def list_tokens(self) -> list[AclToken]:
        return await self._read(lambda tx: tx.load_tokens())

    async def find_token(self, secret_hash: str) -> AclToken | None:
        return await self._read(lambda tx: rules.find_token(tx, secret_hash))

    async def applied_index(self) -> int:
        return await self._read(lambda tx: tx.load_applied())

    async def apply_replicated(self, index: int, mutations: Sequence[Mutation]) -> list[object]:
        def apply(tx: rules.StoreTx) -> list[object]:
            check_index(tx.load_applied(), index)
            results = [mutation(tx) for mutation in mutations]
            tx.save_applied(index)
            return results

        return await self._write(apply)

    async def raft_members(self) -> list[RaftMember]:
        return await self._read(lambda tx: tx.load_members())

    async def snapshot_image(self) -> tuple[int, bytes]:
        """The database file as SQLite serializes it, read inside one transaction on a
        connection of its own: in WAL mode the writer's commits go on meanwhile (serializing
        a store of tens of megabytes on the writer's thread held every write for 100 ms)."""
        if self._path == ":memory:":  # no file for a second connection to read
            return await self._run(_read_image)
        if self._closed:
            raise StoreError("store is closed")

        def image() -> tuple[int, bytes]:
            conn = sqlite3.connect(self._path, isolation_level=None)
            try:
                return _read_image(conn)
            finally:
                conn.close()

        async with self._imaging:
            return await trio.to_thread.run_sync(image)

    async def restore_image(self, image: bytes) -> int:
        """Check the image in a file beside the database, then swap it in.

        The live connection is closed first, which checkpoints and removes its WAL, so no
        frame of the old state can be replayed onto the new file; the rename is atomic and
        the directory is fsynced before the new file is opened."""
        if self._closed:
            raise StoreError("store is closed")

        def restore(conn: sqlite3.Connection) -> tuple[sqlite3.Connection, int]:
            staged = self._path + ".restore"
            applied = stage_image(staged, image) if image else stage_empty(staged)
            conn.close()
            os.replace(staged, self._path)
            fsync_dir(os.path.dirname(os.path.abspath(self._path)))
            return connect(self._path, durable=self._durable), applied

        async with self._imaging, self._limiter:
            self._cache.clear()
            self._conn, applied = await trio.to_thread.run_sync(restore, self._conn)
        return applied

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await trio.to_thread.run_sync(self._conn.close, limiter=self._limiter)


def _read_image(conn: sqlite3.Connection) -> tuple[int, bytes]:
    """The applied index and the serialized database, read in one transaction."""
    conn.execute("BEGIN")
    try:
        return SqliteTx(conn, JobCache()).load_applied(), conn.serialize()
    finally:
        conn.execute("COMMIT")


_DOC_BATCH = 500


def _load_docs(conn: sqlite3.Connection, names: list[str]) -> list[Job]:
    """The jobs named, in that order (fetched after sorting, so sorts never carry documents)."""
    rows: dict[str, Any] = {}
    for i in range(0, len(names), _DOC_BATCH):
        batch = names[i : i + _DOC_BATCH]
        marks = ", ".join("?" * len(batch))
        for row in conn.execute(f"{JOB_READ} WHERE d.name IN ({marks})", batch):
            rows[row[0]] = row
    return [job_from_row(rows[name]) for name in names]


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
    for key, value in sorted(q.tags.items()):  # rare filter: read from the job's document
        clauses.append(
            "EXISTS (SELECT 1 FROM job_docs AS d WHERE d.name = jobs.name"
            " AND json_extract(d.doc, ?) = ?)"
        )
        params += ['$.tags."' + key.replace('"', '""') + '"', value]
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
async def open_sqlite_store(
    path: str | os.PathLike[str], *, durable: bool = True
) -> AsyncIterator[SqliteStore]:
    """Open (creating if needed) the store at ``path``; closed on exit, even when cancelled."""
    store = await SqliteStore.open(path, durable=durable)
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store.close()
