"""The state store interface: jobs, executions, missed ticks and scheduler cursors.

Every mutation is deterministic given its arguments (no clock, no randomness), because later
a Raft FSM applies the same commands on every server and their stores must agree. Two
implementations: `MemoryStore` (the in-memory twin for tests) and `SqliteStore`.
"""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Protocol

import attrs

from dkron_trio.acl import AclToken
from dkron_trio.execution import Execution, MissedTick
from dkron_trio.job import Job, JobStatus


class StoreError(Exception):
    """Base of every error a store raises on purpose."""


class JobNotFound(StoreError):
    def __init__(self, name: str) -> None:
        super().__init__(f"job {name!r} not found")
        self.name = name


class ExecutionNotFound(StoreError):
    def __init__(self, job_name: str, execution_id: str) -> None:
        super().__init__(f"execution {execution_id!r} of job {job_name!r} not found")
        self.job_name = job_name
        self.execution_id = execution_id


class ParentNotFound(StoreError):
    def __init__(self, name: str, parent: str) -> None:
        super().__init__(f"specified parent job {parent!r} of job {name!r} not found")
        self.name = name
        self.parent = parent


class JobHasChildren(StoreError):
    def __init__(self, name: str, children: tuple[str, ...]) -> None:
        super().__init__(
            f"could not delete job {name!r} with dependent jobs {list(children)}, "
            "delete children first"
        )
        self.name = name
        self.children = children


class DependencyCycle(StoreError):
    """Setting this parent would make the job its own ancestor (a client error, like 400)."""

    def __init__(self, name: str, parent: str) -> None:
        super().__init__(f"parent_job {parent!r} of job {name!r} would form a dependency cycle")
        self.name = name
        self.parent = parent


class TokenNotFound(StoreError):
    def __init__(self, token_id: str) -> None:
        super().__init__(f"ACL token {token_id!r} not found")
        self.token_id = token_id


class TokenExists(StoreError):
    def __init__(self, token_id: str) -> None:
        super().__init__(f"ACL token {token_id!r} exists already")
        self.token_id = token_id


class AclBootstrapDone(StoreError):
    """A bootstrap asked for after the first token exists (answered 409)."""

    def __init__(self) -> None:
        super().__init__(
            "ACL bootstrap refused: tokens exist already (an admin token creates more)"
        )


def _missed_tuple(value: Iterable[MissedTick]) -> tuple[MissedTick, ...]:
    return tuple(value)


def _execution_tuple(value: Iterable[Execution]) -> tuple[Execution, ...]:
    return tuple(value)


@attrs.frozen
class PlanRecord:
    """One scheduler decision for one job: ticks it records as missed, the executions it
    starts (running) and the cursor past them, stored at once so that a crash leaves each
    tick ran-or-recorded. Every tick and execution belongs to ``job_name``."""

    job_name: str
    cursor: datetime
    missed: tuple[MissedTick, ...] = attrs.field(converter=_missed_tuple)
    started: tuple[Execution, ...] = attrs.field(converter=_execution_tuple)

    def __attrs_post_init__(self) -> None:
        items: tuple[MissedTick | Execution, ...] = (*self.missed, *self.started)
        for item in items:
            if item.job_name != self.job_name:
                raise ValueError(
                    f"plan for job {self.job_name!r} holds a "
                    f"{type(item).__name__} of job {item.job_name!r}"
                )


@attrs.frozen
class PlansRecorded:
    """What `Store.record_plans` did: the fence of the started executions (a replicated
    store's log index; None for a local store, which keeps their fences) and the jobs whose
    plan was not stored because the job is gone (deleted since the scheduler read it)."""

    fence: int | None
    refused: frozenset[str] = frozenset()


@attrs.frozen
class RaftMember:
    """A server of the replicated state: its Raft id, node name and RPC address (host:port).

    Kept in the replicated state itself, so every server knows where its peers are after a
    restart or a snapshot."""

    node_id: int
    name: str
    address: str


class ClusterUnavailable(StoreError):
    """The replicated state cannot take a write now (no leader, no quorum, or the outcome of
    a write is unknown because leadership changed under it). Answered as 503."""


class InvalidQuery(StoreError):
    """A list query the store cannot answer (unknown sort field, negative page bounds)."""


class SortOrder(Enum):
    ASC = "asc"
    DESC = "desc"


@attrs.frozen(kw_only=True)
class JobQuery:
    """Dkron's job list filters. All metadata pairs must match; ``q`` is a case-insensitive
    substring of name or displayname; ``end`` is exclusive (json-server's ``_end``)."""

    metadata: Mapping[str, str] = attrs.field(factory=dict)
    tags: Mapping[str, str] = attrs.field(factory=dict)
    """Only jobs whose ``tags`` hold every one of these pairs exactly (the UI's tag filter)."""
    q: str = ""
    status: JobStatus | None = None
    disabled: bool | None = None
    sort: str = "name"
    order: SortOrder = SortOrder.ASC
    start: int = 0
    end: int | None = None


@attrs.frozen
class JobPage:
    """One page of jobs and how many matched before paging (``X-Total-Count``)."""

    jobs: list[Job]
    total: int


@attrs.frozen(kw_only=True)
class ExecutionQuery:
    """Execution listing: sort field (``id`` means ``started_at``), order, output tail limit
    in bytes (sets ``output_truncated`` on cut executions), and at most ``limit`` results."""

    sort: str = "started_at"
    order: SortOrder = SortOrder.DESC
    output_size_limit: int | None = None
    limit: int | None = None


class Store(Protocol):
    async def set_job(self, job: Job) -> Job:
        """Validate and upsert with Dkron's merge rules; returns the job as stored.

        On update: counters are the max of stored and submitted, last_success/last_error the
        later, a non-empty stored status wins, created_at is kept (and ``next`` recomputed
        after the submitted created_at if that moved the @every anchor), dependent_jobs is
        the store's own. Raises ValidationError, ParentNotFound, DependencyCycle.
        """
        ...

    async def get_job(self, name: str) -> Job: ...

    async def delete_job(self, name: str) -> Job:
        """Delete a job with its executions, missed ticks and cursor; JobHasChildren if any."""
        ...

    async def list_jobs(self, q: JobQuery) -> JobPage: ...

    async def put_execution(self, ex: Execution) -> None:
        """Upsert by (job_name, id); see `dkron_trio.store.rules.apply_put_execution`."""
        ...

    async def get_execution(self, job_name: str, execution_id: str) -> Execution: ...

    async def list_executions(self, job_name: str, q: ExecutionQuery) -> list[Execution]: ...

    async def running_executions(self, job_name: str | None = None) -> list[Execution]:
        """Executions still running (of one job or all), oldest first."""
        ...

    async def delete_executions(self, job_name: str) -> int:
        """Delete every execution of the job and reset its counters; returns how many."""
        ...

    async def record_missed(self, m: MissedTick) -> None:
        """Record (or replace: one per job and scheduled_at) a missed tick; applies retention."""
        ...

    async def list_missed(self, job_name: str, limit: int = 100) -> list[MissedTick]:
        """Newest scheduled_at first."""
        ...

    async def get_cursor(self, job_name: str) -> datetime | None: ...

    async def schedule_state(self) -> list[tuple[Job, datetime | None]]:
        """Every job with its cursor, in one consistent read: what a new leader's scheduler
        loads (one read, not one per job, so it is ready soon after an election)."""
        ...

    async def set_cursor(self, job_name: str, t: datetime) -> None: ...

    async def record_plans(self, plans: Sequence[PlanRecord]) -> PlansRecorded:
        """Store a batch of scheduler decisions at once (one transaction; one log entry in a
        cluster, whose index fences every execution they start). A plan whose job is gone
        is skipped and named in the result; the others are stored."""
        ...

    async def put_token(self, token: AclToken, *, bootstrap: bool = False) -> None:
        """Store a new ACL token; TokenExists if its id is taken, AclBootstrapDone if
        ``bootstrap`` and any token exists."""
        ...

    async def delete_token(self, token_id: str) -> AclToken:
        """Remove a token (TokenNotFound if unknown); returns it."""
        ...

    async def list_tokens(self) -> list[AclToken]:
        """Every token, oldest first (then by id)."""
        ...

    async def find_token(self, secret_hash: str) -> AclToken | None:
        """The token stored under this hash, if any (how a request's token is checked)."""
        ...

    async def close(self) -> None: ...
