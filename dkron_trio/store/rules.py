"""The store's rules, written once for every implementation.

Each mutation is a function over `StoreTx`, a small synchronous interface to one transaction.
`MemoryStore` runs them on dicts, `SqliteStore` inside one SQLite transaction, so both stores
keep the same bookkeeping (merge rules, parent/child lists, counters, status, retention).
Every rule checks everything before its first write, so a refused mutation changes nothing
even where the transaction cannot roll back (the memory store).

Job columns: sortable fields are encoded as int/str/None (times and durations in
microseconds, booleans 0/1, enums by value) — the same values `SqliteStore` keeps in columns,
so that both stores sort identically (None first in ascending order, then by name).
"""

import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import attrs

from dkron_trio.acl import ID_CHARS, AclToken
from dkron_trio.execution import Execution, ExecutionStatus, MissedTick, run_status
from dkron_trio.job import EPOCH, Job, JobStatus, require_aware
from dkron_trio.store.base import (
    AclBootstrapDone,
    DependencyCycle,
    ExecutionQuery,
    InvalidQuery,
    JobHasChildren,
    JobNotFound,
    JobQuery,
    ParentNotFound,
    PlanRecord,
    RaftMember,
    TokenExists,
    TokenNotFound,
)

Column = int | str | None


def micros(t: datetime) -> int:
    """Microseconds since the Unix epoch (exact; `t` is aware, whatever its zone)."""
    d = t - EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def _opt_micros(t: datetime | None) -> int | None:
    return None if t is None else micros(t)


def _span(value: timedelta | None) -> int | None:
    return None if value is None else value // timedelta(microseconds=1)


def job_columns(job: Job) -> dict[str, Column]:
    """Every scalar Job field (the ones a job list can be sorted by), encoded as a column."""
    return {
        "name": job.name,
        "displayname": job.displayname,
        "timezone": job.timezone,
        "schedule": job.schedule,
        "owner": job.owner,
        "owner_email": job.owner_email,
        "success_count": job.success_count,
        "error_count": job.error_count,
        "last_success": _opt_micros(job.last_success),
        "last_error": _opt_micros(job.last_error),
        "disabled": int(job.disabled),
        "retries": job.retries,
        "parent_job": job.parent_job,
        "concurrency": job.concurrency.value,
        "executor": job.executor,
        "status": job.status.value,
        "next": _opt_micros(job.next),
        "ephemeral": int(job.ephemeral),
        "starts_at": _opt_micros(job.starts_at),
        "expires_at": _opt_micros(job.expires_at),
        "created_at": micros(job.created_at),
        "misfire_policy": job.misfire_policy.value,
        "misfire_grace": _span(job.misfire_grace),
        "retry_backoff": _span(job.retry_backoff),
        "retry_other_node": int(job.retry_other_node),
        "timeout": _span(job.timeout),
        "retention_count": job.retention_count,
        "retention_age": _span(job.retention_age),
    }


JOB_SORT_FIELDS = tuple(job_columns(Job(name="-")))
"""The job fields a list can be sorted by, in column order."""

_JOB_SORT_ALIASES = {"id": "name"}

EXECUTION_SORT_FIELDS = frozenset(
    {"started_at", "finished_at", "attempt", "scheduled_at", "group", "node_name", "status"}
)
_EXECUTION_SORT_ALIASES = {"id": "started_at"}


def job_sort_field(q: JobQuery) -> str:
    """The job field to sort by (``id`` = ``name``); InvalidQuery if not sortable."""
    field = _JOB_SORT_ALIASES.get(q.sort, q.sort)
    if field not in JOB_SORT_FIELDS:
        raise InvalidQuery(f"cannot sort jobs by {q.sort!r}")
    if q.start < 0 or (q.end is not None and q.end < 0):
        raise InvalidQuery("_start and _end must not be negative")
    return field


def execution_sort_field(q: ExecutionQuery) -> str:
    """The execution field to sort by (``id`` = ``started_at``); InvalidQuery if unknown."""
    field = _EXECUTION_SORT_ALIASES.get(q.sort, q.sort)
    if field not in EXECUTION_SORT_FIELDS:
        raise InvalidQuery(f"cannot sort executions by {q.sort!r}")
    if q.output_size_limit is not None and q.output_size_limit < 0:
        raise InvalidQuery("output_size_limit must not be negative")
    if q.limit is not None and q.limit < 0:
        raise InvalidQuery("limit must not be negative")
    return field


def execution_sort_value(ex: Execution, field: str) -> Column:
    """The column value an execution sorts by (same encoding as SqliteStore's columns)."""
    if field == "started_at":
        return micros(ex.started_at)
    if field == "finished_at":
        return _opt_micros(ex.finished_at)
    if field == "scheduled_at":
        return _opt_micros(ex.scheduled_at)
    if field == "status":
        return ex.status.value
    value: Column = getattr(ex, field)
    return value


def null_first(value: Column) -> tuple[int, int | str]:
    """A sort key that puts None first, like SQLite's NULL ordering."""
    return (0, 0) if value is None else (1, value)


def search_text(text: str) -> str:
    """What the ``q`` filter compares (case-insensitive, Unicode-aware)."""
    return text.casefold()


def job_matches(job: Job, q: JobQuery) -> bool:
    """Does the job pass the query's filters (not the paging)?"""
    if q.status is not None and job.status is not q.status:
        return False
    if q.disabled is not None and job.disabled != q.disabled:
        return False
    if any(job.metadata.get(k) != v for k, v in q.metadata.items()):
        return False
    if any(job.tags.get(k) != v for k, v in q.tags.items()):
        return False
    if q.q:
        needle = search_text(q.q)
        return needle in search_text(job.name) or needle in search_text(job.displayname)
    return True


class StoreTx(Protocol):
    """The primitive reads and writes of one store transaction (synchronous)."""

    def load_job(self, name: str) -> Job | None: ...

    def save_job(self, job: Job) -> None:
        """Insert or update; never touches the job's executions, missed ticks or cursor."""

    def remove_job(self, name: str) -> None:
        """Delete the job with its executions, missed ticks and cursor."""

    def load_execution(self, job_name: str, execution_id: str) -> Execution | None: ...

    def save_execution(self, ex: Execution) -> None: ...

    def latest_run(self, job_name: str) -> list[Execution]:
        """The finished executions of the job's highest finished group (output may be empty)."""
        ...

    def prune_executions(self, job_name: str, keep: int, before: datetime | None) -> None:
        """Delete finished executions ranked ``keep`` or later by (started_at, id) descending
        among all of the job's executions, and finished ones started before ``before``."""

    def clear_executions(self, job_name: str) -> int: ...

    def save_missed(self, m: MissedTick) -> None:
        """Insert or replace the one record per (job_name, scheduled_at)."""

    def prune_missed(self, job_name: str, keep: int, before: datetime | None) -> None:
        """Keep the ``keep`` newest by scheduled_at; drop those scheduled before ``before``."""

    def load_cursor(self, job_name: str) -> datetime | None: ...

    def save_cursor(self, job_name: str, t: datetime) -> None: ...

    def load_applied(self) -> int:
        """The last replicated log index this state reflects (0 for none)."""
        ...

    def save_applied(self, index: int) -> None: ...

    def load_members(self) -> list[RaftMember]: ...

    def save_member(self, member: RaftMember) -> None:
        """Insert or replace the member with this node id."""

    def remove_member(self, node_id: int) -> None: ...

    def load_tokens(self) -> list[AclToken]:
        """Every ACL token, oldest first (then by id)."""
        ...

    def load_token(self, token_id: str) -> AclToken | None: ...

    def save_token(self, token: AclToken) -> None: ...

    def remove_token(self, token_id: str) -> None: ...


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def merge_job(stored: Job | None, submitted: Job) -> Job:
    """Dkron's upsert rules (see `Store.set_job`)."""
    if stored is None:
        return attrs.evolve(submitted, dependent_jobs=()) if submitted.dependent_jobs else submitted
    merged = attrs.evolve(
        submitted,
        success_count=max(stored.success_count, submitted.success_count),
        error_count=max(stored.error_count, submitted.error_count),
        last_success=_later(stored.last_success, submitted.last_success),
        last_error=_later(stored.last_error, submitted.last_error),
        status=submitted.status if stored.status is JobStatus.UNTRIGGERED else stored.status,
        created_at=stored.created_at,
        dependent_jobs=stored.dependent_jobs,
    )
    if submitted.created_at != stored.created_at and submitted.starts_at is None:
        merged = attrs.evolve(merged, next=merged.compute_next(submitted.created_at))
    return merged


_JOB_INIT = tuple((f.name, f.alias or f.name) for f in attrs.fields(Job) if f.init)


def job_with(job: Job, changes: dict[str, Any]) -> Job:
    """`attrs.evolve(job, **changes)` without its per-call introspection (a finished run
    moves its job's counters on every replica)."""
    fields = {alias: getattr(job, name) for name, alias in _JOB_INIT}
    fields.update(changes)
    return Job(**fields)


def require_job(tx: StoreTx, name: str) -> Job:
    """The stored job or JobNotFound."""
    job = tx.load_job(name)
    if job is None:
        raise JobNotFound(name)
    return job


def _with_child(parent: Job, child: str) -> Job:
    return attrs.evolve(parent, dependent_jobs=tuple(sorted({*parent.dependent_jobs, child})))


def _without_child(parent: Job, child: str) -> Job:
    children = tuple(c for c in parent.dependent_jobs if c != child)
    return attrs.evolve(parent, dependent_jobs=children)


def apply_set_job(tx: StoreTx, job: Job) -> Job:
    """Validate, check the parent, merge with the stored job, keep parents' child lists."""
    job.validate()
    stored = tx.load_job(job.name)
    new_parent: Job | None = None
    if job.parent_job:
        new_parent = tx.load_job(job.parent_job)
        if new_parent is None:
            raise ParentNotFound(job.name, job.parent_job)
        ancestor: Job | None = new_parent
        while ancestor is not None and ancestor.parent_job:
            if ancestor.parent_job == job.name:
                raise DependencyCycle(job.name, job.parent_job)
            ancestor = tx.load_job(ancestor.parent_job)
    merged = merge_job(stored, job)
    old_parent_name = stored.parent_job if stored is not None else ""
    if old_parent_name != merged.parent_job:
        if old_parent_name:
            old_parent = tx.load_job(old_parent_name)
            if old_parent is not None:
                tx.save_job(_without_child(old_parent, job.name))
        if new_parent is not None:
            tx.save_job(_with_child(new_parent, job.name))
    tx.save_job(merged)
    return merged


def apply_delete_job(tx: StoreTx, name: str) -> Job:
    job = require_job(tx, name)
    if job.dependent_jobs:
        raise JobHasChildren(name, job.dependent_jobs)
    if job.parent_job:
        parent = tx.load_job(job.parent_job)
        if parent is not None:
            tx.save_job(_without_child(parent, name))
    tx.remove_job(name)
    return job


def apply_put_executions(tx: StoreTx, executions: Sequence[Execution]) -> tuple[str, ...]:
    """`apply_put_execution` for each; the ids refused (their job is gone) are returned."""
    refused = []
    for ex in executions:
        try:
            apply_put_execution(tx, ex)
        except JobNotFound:
            refused.append(ex.id)
    return tuple(refused)


def apply_put_execution(tx: StoreTx, ex: Execution) -> None:
    """Upsert an execution and keep the job's bookkeeping.

    A finished execution is never turned back into a running one (a late "started" report is
    ignored). On the first transition to a finished status the job's counter and
    last_success/last_error move; on any finished write the status is recomputed from the
    latest run (`run_status`). Then retention: the job's ``retention_count`` newest
    executions are kept, and none older than ``retention_age`` before ``ex.started_at``;
    running executions are never removed.
    """
    require_aware(ex.started_at, "started_at")
    require_aware(ex.finished_at, "finished_at")
    require_aware(ex.scheduled_at, "scheduled_at")
    job = require_job(tx, ex.job_name)
    previous = tx.load_execution(ex.job_name, ex.id)
    if previous is not None and previous.status.finished and not ex.status.finished:
        return
    tx.save_execution(ex)
    if ex.status.finished:
        changes: dict[str, Any] = {}
        if previous is None or not previous.status.finished:
            at = ex.finished_at or ex.started_at
            if ex.status is ExecutionStatus.SUCCESS:
                changes["success_count"] = job.success_count + 1
                changes["last_success"] = _later(job.last_success, at)
            else:
                changes["error_count"] = job.error_count + 1
                changes["last_error"] = _later(job.last_error, at)
        status = _status_after(tx, job, ex, first=previous is None or not previous.status.finished)
        if status is not job.status:
            changes["status"] = status
        if changes:
            tx.save_job(job_with(job, changes))
    before = None if job.retention_age is None else ex.started_at - job.retention_age
    tx.prune_executions(ex.job_name, job.retention_count, before)


def _status_after(tx: StoreTx, job: Job, ex: Execution, *, first: bool) -> JobStatus:
    """The job's status once ``ex`` is stored (`run_status` of its latest run). A first
    outcome that agrees with a plain success or failure status leaves it as it is, whichever
    run it belongs to (a newer run of it alone, the latest run, whose counted outcomes all
    agree, or an older run), so the latest run is not read back: the common case, on every
    replica for every run."""
    agrees = JobStatus.SUCCESS if ex.status is ExecutionStatus.SUCCESS else JobStatus.FAILED
    if first and job.status is agrees:
        return agrees
    return run_status(tx.latest_run(ex.job_name))


def apply_delete_executions(tx: StoreTx, job_name: str) -> int:
    """Delete all executions of a job and reset its counters (Dkron's DELETE .../executions)."""
    job = require_job(tx, job_name)
    count = tx.clear_executions(job_name)
    tx.save_job(
        attrs.evolve(job, success_count=0, error_count=0, last_success=None, last_error=None)
    )
    return count


def apply_record_missed(tx: StoreTx, m: MissedTick) -> None:
    """Record a missed tick; keeps the job's ``retention_count`` newest (and ``retention_age``)."""
    require_aware(m.scheduled_at, "scheduled_at")
    require_aware(m.recorded_at, "recorded_at")
    job = require_job(tx, m.job_name)
    tx.save_missed(m)
    before = None if job.retention_age is None else m.scheduled_at - job.retention_age
    tx.prune_missed(m.job_name, job.retention_count, before)


def apply_set_cursor(tx: StoreTx, job_name: str, t: datetime) -> None:
    require_aware(t, "cursor")
    require_job(tx, job_name)
    tx.save_cursor(job_name, t)


def apply_record_plans(tx: StoreTx, plans: Sequence[PlanRecord]) -> frozenset[str]:
    """Store each plan whose job exists; the names of those whose job is gone."""
    refused: set[str] = set()
    for plan in plans:
        if tx.load_job(plan.job_name) is None:
            refused.add(plan.job_name)
            continue
        for m in plan.missed:
            apply_record_missed(tx, m)
        for ex in plan.started:
            apply_put_execution(tx, ex)
        apply_set_cursor(tx, plan.job_name, plan.cursor)
    return frozenset(refused)


def apply_add_member(tx: StoreTx, member: RaftMember) -> None:
    """Record a Raft member's name and address; a member with the same name but another id
    (a server re-created with a new identity) gives way."""
    for old in tx.load_members():
        if old.name == member.name and old.node_id != member.node_id:
            tx.remove_member(old.node_id)
    tx.save_member(member)


def apply_remove_member(tx: StoreTx, node_id: int) -> None:
    tx.remove_member(node_id)


def apply_set_token(tx: StoreTx, token: AclToken, bootstrap: bool) -> None:
    """Store a new token. Tokens are never overwritten (a new secret is a new token), and a
    bootstrap is refused once any token exists: the first admin token is made once."""
    if bootstrap and tx.load_tokens():
        raise AclBootstrapDone()
    if tx.load_token(token.id) is not None:
        raise TokenExists(token.id)
    tx.save_token(token)


def apply_delete_token(tx: StoreTx, token_id: str) -> AclToken:
    token = tx.load_token(token_id)
    if token is None:
        raise TokenNotFound(token_id)
    tx.remove_token(token_id)
    return token


def find_token(tx: StoreTx, secret_hash: str) -> AclToken | None:
    """The token stored under this hash (its id is the hash's prefix, so no second index)."""
    token = tx.load_token(secret_hash[:ID_CHARS])
    if token is None or not hmac.compare_digest(token.secret_hash, secret_hash):
        return None
    return token


def token_order(token: AclToken) -> tuple[int, str]:
    """Listing order of tokens in both stores."""
    return micros(token.created_at), token.id
