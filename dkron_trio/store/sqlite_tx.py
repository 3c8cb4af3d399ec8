"""The layout of ``state.db`` and the `rules.StoreTx` over its connection.

Jobs are kept as their JSON record plus one column per sortable field (indexed where Dkron's
UI sorts or filters) and a metadata side table, so filters, sorting and paging run in SQL.
Decoded jobs are cached in front of the file (see `sqlite_cache.JobCache`).

A job's run bookkeeping (counters, last_success/last_error, status: `STATE_FIELDS`) changes
on every finished execution while its definition does not, so such a write updates only
those columns of ``jobs`` and leaves the JSON record alone: the columns are authoritative
for these fields and a job is read as its record overlaid with them (`job_from_row`). A
write that changes anything else rewrites the record whole.
"""

import json
import operator
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from dkron_trio.acl import AclToken, Role
from dkron_trio.execution import (
    Execution,
    ExecutionStatus,
    MissedTick,
    tail_bytes_text,
)
from dkron_trio.job import Job, JobStatus
from dkron_trio.store import rules
from dkron_trio.store.base import RaftMember, StoreError
from dkron_trio.store.sqlite_cache import UNKNOWN, JobCache

SCHEMA_VERSION = 3
"""1: jobs, executions, missed ticks. 2: adds the replica tables (applied index, members).
3: adds the ACL tokens table."""

_REPLICA_SCHEMA = (
    "CREATE TABLE replica (id INTEGER PRIMARY KEY CHECK (id = 0), applied INTEGER NOT NULL)",
    "INSERT INTO replica (id, applied) VALUES (0, 0)",
    "CREATE TABLE raft_members ("
    " node_id INTEGER PRIMARY KEY, name TEXT NOT NULL, address TEXT NOT NULL)",
)

_TOKEN_SCHEMA = (
    "CREATE TABLE acl_tokens ("
    " id TEXT NOT NULL PRIMARY KEY, hash TEXT NOT NULL, role TEXT NOT NULL,"
    " description TEXT NOT NULL, created_at INTEGER NOT NULL)",
)

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: _REPLICA_SCHEMA + _TOKEN_SCHEMA,
    2: _TOKEN_SCHEMA,
}
"""From each older schema version: the statements that bring it to `SCHEMA_VERSION`."""

OLDEST_IMAGE_VERSION = 2
"""Images (snapshots, backups) start at version 2, the first with replica state; older
versions are migrated as they are restored."""

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


_DOC_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""One encoder for every job document (`json.dumps` with options builds one per call)."""


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
    statements += _REPLICA_SCHEMA
    statements += _TOKEN_SCHEMA
    statements.append(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return statements


EXECUTION_FIELDS = (
    "job_name, id, started_at, finished_at, success, output, node_name, "
    '"group", attempt, scheduled_at, fence, status, exit_code, output_truncated'
)
_EXECUTION_UPDATES = ", ".join(
    f"{c} = excluded.{c}" for c in EXECUTION_FIELDS.split(", ") if c not in ("job_name", "id")
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


def _reads_back_identical(ex: Execution) -> bool:
    """Would `execution_from_row` rebuild exactly this object's values (UTC times, text
    output)? Only then may the cache stand in for the row."""
    return (
        ex.started_at.tzinfo is UTC
        and (ex.finished_at is None or ex.finished_at.tzinfo is UTC)
        and (ex.scheduled_at is None or ex.scheduled_at.tzinfo is UTC)
        and type(ex.output) is str
        and type(ex.success) is bool
        and type(ex.output_truncated) is bool
    )


def execution_from_row(row: Sequence[Any]) -> Execution:
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


STATE_FIELDS = ("success_count", "error_count", "last_success", "last_error", "status")
"""Job fields kept in their columns only when nothing else of the job changes."""

JOB_READ = (
    "SELECT d.name, d.doc, j.success_count, j.error_count, j.last_success, j.last_error,"
    " j.status FROM job_docs AS d JOIN jobs AS j ON j.name = d.name"
)
"""Columns `job_from_row` reads (filter with ``WHERE d.name ...``)."""

_definition = operator.attrgetter(
    *(f.name for f in attrs.fields(Job) if f.name not in STATE_FIELDS)
)
_state = operator.attrgetter(*STATE_FIELDS)
_STATE_COLUMN: dict[str, Callable[[Any], rules.Column]] = {
    "success_count": int,
    "error_count": int,
    "last_success": _opt_micros,
    "last_error": _opt_micros,
    "status": lambda status: status.value,
}
"""Each state field's column encoding (as `rules.job_columns`)."""


def job_from_row(row: Sequence[Any]) -> Job:
    """A job from a `JOB_READ` row: its record with the state columns laid over it."""
    job = Job.from_record(json.loads(row[1]))
    success_count, error_count, last_success, last_error, status = row[2:7]
    if (
        job.success_count != success_count
        or job.error_count != error_count
        or _opt_micros(job.last_success) != last_success
        or _opt_micros(job.last_error) != last_error
        or job.status.value != status
    ):
        job = attrs.evolve(
            job,
            success_count=success_count,
            error_count=error_count,
            last_success=_opt_time(last_success),
            last_error=_opt_time(last_error),
            status=JobStatus(status),
        )
    return job


@attrs.define
class SqliteTx:
    """`rules.StoreTx` over the open connection (inside a transaction)."""

    _conn: sqlite3.Connection
    _cache: JobCache

    def load_job(self, name: str) -> Job | None:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        row = self._conn.execute(f"{JOB_READ} WHERE d.name = ?", (name,)).fetchone()
        if row is None:
            self._cache.know_cursor(name, None)  # if it is created now, its cursor is unset
            return None
        job = job_from_row(row)
        self._cache.put(job)
        return job

    def save_job(self, job: Job) -> None:
        """Write the job; only its changed state columns if the stored definition is the
        same (the cached copy tells, and the cache holds only what the file holds)."""
        old = self._cache.get(job.name)
        self._cache.put(job)
        if old is not None and _definition(old) == _definition(job):
            self._save_state(old, job)
            return
        columns = rules.job_columns(job)
        values = [columns[f] for f in _JOB_FIELDS]
        doc = _DOC_ENCODER.encode(job.to_json())
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

    def _save_state(self, old: Job, job: Job) -> None:
        changed = [
            (f, value)
            for f, before, value in zip(STATE_FIELDS, _state(old), _state(job), strict=True)
            if before != value
        ]
        if not changed:
            return
        sets = ", ".join(f'"{f}" = ?' for f, _ in changed)
        values = [_STATE_COLUMN[f](value) for f, value in changed]
        self._conn.execute(f"UPDATE jobs SET {sets} WHERE name = ?", [*values, job.name])

    def remove_job(self, name: str) -> None:
        self._cache.drop(name)
        self._conn.execute("DELETE FROM jobs WHERE name = ?", (name,))

    def load_execution(self, job_name: str, execution_id: str) -> Execution | None:
        key = (job_name, execution_id)
        known = self._cache.execution(key)
        if known is not UNKNOWN:
            return known
        row = self._conn.execute(
            f"SELECT {EXECUTION_FIELDS} FROM executions WHERE job_name = ? AND id = ?", key
        ).fetchone()
        ex = None if row is None else execution_from_row(row)
        self._cache.know_execution(key, ex)
        return ex

    def save_execution(self, ex: Execution) -> None:
        key = (ex.job_name, ex.id)
        before = self._cache.execution(key)
        count = self._cache.count(ex.job_name)
        if before is UNKNOWN or count is None:
            self._cache.set_count(ex.job_name, None)  # unknown whether this adds a row
        elif before is None:
            self._cache.set_count(ex.job_name, count + 1)
        self._conn.execute(
            f"INSERT INTO executions ({EXECUTION_FIELDS}) VALUES ({', '.join('?' * 14)})"
            f" ON CONFLICT (job_name, id) DO UPDATE SET {_EXECUTION_UPDATES}",
            _execution_row(ex),
        )
        if _reads_back_identical(ex):
            self._cache.know_execution(key, ex)
        else:
            self._cache.forget_execution(key)

    def latest_run(self, job_name: str) -> list[Execution]:
        fields = EXECUTION_FIELDS.replace("output,", "'' AS output,")
        rows = self._conn.execute(
            f"SELECT {fields} FROM executions WHERE job_name = ? AND status != 'running'"
            ' AND "group" = (SELECT max("group") FROM executions'
            "  WHERE job_name = ? AND status != 'running')",
            (job_name, job_name),
        ).fetchall()
        return [execution_from_row(row) for row in rows]

    def prune_executions(self, job_name: str, keep: int, before: datetime | None) -> None:
        """Skipped when the job's known count is within ``keep`` and no age limit applies
        (nothing can rank ``keep`` or later then)."""
        count = self._cache.count(job_name)
        if count is None:
            count = self._conn.execute(
                "SELECT count(*) FROM executions WHERE job_name = ?", (job_name,)
            ).fetchone()[0]
        if before is None and count <= keep:
            self._cache.set_count(job_name, count)
            return
        deleted = self._conn.execute(
            "DELETE FROM executions WHERE job_name = ? AND status != 'running' AND ("
            " started_at < ? OR id IN (SELECT id FROM executions WHERE job_name = ?"
            "  ORDER BY started_at DESC, id DESC LIMIT -1 OFFSET ?)) RETURNING id",
            (job_name, _opt_micros(before), job_name, keep),
        ).fetchall()
        for (execution_id,) in deleted:
            self._cache.forget_execution((job_name, execution_id))
        self._cache.set_count(job_name, count - len(deleted))

    def clear_executions(self, job_name: str) -> int:
        cursor = self._conn.execute("DELETE FROM executions WHERE job_name = ?", (job_name,))
        self._cache.forget_executions(job_name)
        self._cache.set_count(job_name, 0)
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

    def schedule_state(self) -> list[tuple[Job, datetime | None]]:
        cursors = {
            name: _opt_time(cursor)
            for name, cursor in self._conn.execute("SELECT name, cursor FROM jobs")
        }
        return [(job_from_row(row), cursors[row[0]]) for row in self._conn.execute(JOB_READ)]

    def load_cursor(self, job_name: str) -> datetime | None:
        known = self._cache.cursor(job_name)
        if known is not UNKNOWN:
            return known
        row = self._conn.execute("SELECT cursor FROM jobs WHERE name = ?", (job_name,)).fetchone()
        cursor = None if row is None else _opt_time(row[0])
        self._cache.know_cursor(job_name, cursor)
        return cursor

    def save_cursor(self, job_name: str, t: datetime) -> None:
        """Only for a job that exists (`rules.apply_set_cursor` checks)."""
        self._conn.execute("UPDATE jobs SET cursor = ? WHERE name = ?", (rules.micros(t), job_name))
        self._cache.know_cursor(job_name, t)

    def load_applied(self) -> int:
        applied: int = self._conn.execute("SELECT applied FROM replica").fetchone()[0]
        return applied

    def save_applied(self, index: int) -> None:
        self._conn.execute("UPDATE replica SET applied = ?", (index,))

    def load_members(self) -> list[RaftMember]:
        rows = self._conn.execute(
            "SELECT node_id, name, address FROM raft_members ORDER BY node_id"
        ).fetchall()
        return [RaftMember(node_id, name, address) for node_id, name, address in rows]

    def save_member(self, member: RaftMember) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO raft_members (node_id, name, address) VALUES (?, ?, ?)",
            (member.node_id, member.name, member.address),
        )

    def remove_member(self, node_id: int) -> None:
        self._conn.execute("DELETE FROM raft_members WHERE node_id = ?", (node_id,))

    def load_tokens(self) -> list[AclToken]:
        rows = self._conn.execute(
            f"SELECT {_TOKEN_FIELDS} FROM acl_tokens ORDER BY created_at, id"
        ).fetchall()
        return [_token_from_row(row) for row in rows]

    def load_token(self, token_id: str) -> AclToken | None:
        row = self._conn.execute(
            f"SELECT {_TOKEN_FIELDS} FROM acl_tokens WHERE id = ?", (token_id,)
        ).fetchone()
        return None if row is None else _token_from_row(row)

    def save_token(self, token: AclToken) -> None:
        self._conn.execute(
            f"INSERT OR REPLACE INTO acl_tokens ({_TOKEN_FIELDS}) VALUES (?, ?, ?, ?, ?)",
            (
                token.id,
                token.secret_hash,
                token.role.value,
                token.description,
                rules.micros(token.created_at),
            ),
        )

    def remove_token(self, token_id: str) -> None:
        self._conn.execute("DELETE FROM acl_tokens WHERE id = ?", (token_id,))


_TOKEN_FIELDS = "id, hash, role, description, created_at"


def _token_from_row(row: Sequence[Any]) -> AclToken:
    return AclToken(
        id=row[0],
        secret_hash=row[1],
        role=Role(row[2]),
        description=row[3],
        created_at=rules.from_micros(row[4]),
    )


def connect(path: str, *, durable: bool = True) -> sqlite3.Connection:
    """Open (creating or migrating) the state database. Not ``durable``: commits are not
    fsync'd (WAL with ``synchronous=NORMAL``: atomic, and a power loss may undo the last
    ones), for a replica of a durable log that replays what it lost."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        conn.execute("PRAGMA foreign_keys = ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise StoreError(f"{path} is not a dkron-trio state database")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _schema():
                conn.execute(statement)
            conn.execute("COMMIT")
        elif version in _MIGRATIONS:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        elif version != SCHEMA_VERSION:
            raise StoreError(
                f"{path} has schema version {version}; this build reads version {SCHEMA_VERSION}"
            )
    except BaseException:
        conn.close()
        raise
    return conn
