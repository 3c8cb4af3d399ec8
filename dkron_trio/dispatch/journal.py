"""The worker's journal (``agent.db``): every attempt it accepted, written (fsync'd) before
its process starts, and marked when it finished. After a crash the unfinished ones are
reported `lost`; an order for an attempt already in the journal never starts a second
process (DESIGN.md §5, the run protocol, step 2).

Accepts and finishes of concurrent attempts share one transaction (one fsync): at hundreds
of runs a second the fsync, not the row, is the cost."""

import enum
import os
import sqlite3
from collections.abc import Sequence

import attrs
import trio

from dkron_trio.coalesce import Coalescer
from dkron_trio.dispatch.wire import decode_execution, encode_execution
from dkron_trio.execution import Execution

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS attempts ("
    " id TEXT PRIMARY KEY, record BLOB NOT NULL, finished INTEGER NOT NULL)"
)
KEEP_FINISHED = 10_000
"""Finished attempts kept to answer repeated orders and status queries."""


_IDS_PER_QUERY = 500
"""Ids per lookup (SQLite's default limit of bound parameters is 999 on old builds)."""


class _Op(enum.Enum):
    ACCEPT = "accept"
    FINISH = "finish"


@attrs.define(eq=False)
class Journal:
    _conn: sqlite3.Connection
    _limiter: trio.CapacityLimiter = attrs.Factory(lambda: trio.CapacityLimiter(1))
    _writes: Coalescer[tuple[_Op, Execution], bool] = attrs.field(init=False)

    @_writes.default
    def _coalescer(self) -> Coalescer[tuple[_Op, Execution], bool]:
        return Coalescer(self._write_batch)

    @classmethod
    async def open(cls, path: str | os.PathLike[str]) -> "Journal":
        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(os.fspath(path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute(_SCHEMA)
            return conn

        return cls(await trio.to_thread.run_sync(connect))

    async def _run(self, sql: str, params: tuple[object, ...]) -> list[tuple[bytes]]:
        def run() -> list[tuple[bytes]]:
            rows: list[tuple[bytes]] = self._conn.execute(sql, params).fetchall()
            return rows

        return await trio.to_thread.run_sync(run, limiter=self._limiter)

    async def _write_batch(self, ops: list[tuple[_Op, Execution]]) -> Sequence[bool]:
        def write() -> list[bool]:
            conn = self._conn
            outcomes = []
            conn.execute("BEGIN IMMEDIATE")
            try:
                for op, execution in ops:
                    record = encode_execution(execution)
                    if op is _Op.ACCEPT:
                        cursor = conn.execute(
                            "INSERT OR IGNORE INTO attempts (id, record, finished)"
                            " VALUES (?, ?, 0)",
                            (execution.id, record),
                        )
                    else:
                        cursor = conn.execute(
                            "UPDATE attempts SET record = ?, finished = 1 WHERE id = ?",
                            (record, execution.id),
                        )
                    outcomes.append(cursor.rowcount == 1)
                if any(op is _Op.FINISH for op, _ in ops):
                    conn.execute(
                        "DELETE FROM attempts WHERE finished = 1 AND rowid <="
                        " (SELECT max(rowid) FROM attempts) - ?",
                        (KEEP_FINISHED,),
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return outcomes

        return await trio.to_thread.run_sync(write, limiter=self._limiter)

    async def get_many(self, execution_ids: list[str]) -> dict[str, Execution]:
        """The journalled records of those attempts it holds, by id."""
        found: dict[str, Execution] = {}
        for start in range(0, len(execution_ids), _IDS_PER_QUERY):
            chunk = tuple(execution_ids[start : start + _IDS_PER_QUERY])
            marks = ",".join("?" * len(chunk))
            rows = await self._run(f"SELECT record FROM attempts WHERE id IN ({marks})", chunk)
            for (record,) in rows:
                execution = decode_execution(record)
                found[execution.id] = execution
        return found

    async def accept_all(self, executions: list[Execution]) -> Sequence[bool]:
        """Journal new attempts in one transaction; per attempt, False (nothing written) if
        it was journalled already."""
        if not executions:
            return []
        return await self._write_batch([(_Op.ACCEPT, e) for e in executions])

    async def finish(self, execution: Execution) -> None:
        await self._writes.submit((_Op.FINISH, execution))

    async def unfinished(self) -> list[Execution]:
        rows = await self._run("SELECT record FROM attempts WHERE finished = 0", ())
        return [decode_execution(row[0]) for row in rows]

    async def close(self) -> None:
        await trio.to_thread.run_sync(self._conn.close, limiter=self._limiter)
