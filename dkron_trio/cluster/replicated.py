"""ReplicatedStore: the `Store` the agent uses on a server; writes go through the cluster.

Reads are answered by the local replica. Each write becomes a command, is committed through
the `CommandLog` (the leader proposes it; a follower forwards it) and returns the state
machine's result; a refusal of the store's rules is raised as the same error a local store
would raise, so the HTTP API answers alike on every server.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import attrs

from dkron_trio.acl import AclToken
from dkron_trio.commands import (
    Command,
    CommandError,
    DeleteExecutions,
    DeleteJob,
    DeleteToken,
    PutExecution,
    PutExecutions,
    RecordMissed,
    RecordPlans,
    SetCursor,
    SetJob,
    SetToken,
)
from dkron_trio.execution import Execution, MissedTick
from dkron_trio.job import Job, ValidationError
from dkron_trio.store.base import (
    ExecutionQuery,
    JobPage,
    JobQuery,
    PlanRecord,
    PlansRecorded,
    StoreError,
)
from dkron_trio.store.replica import ReplicaStore


class CommandLog(Protocol):
    """Commits commands for the whole cluster (DESIGN.md §3's narrow interface)."""

    async def apply(self, cmd: Command, *, forward: bool = True) -> object:
        """The state machine's result once committed and applied here; a refusal comes back
        as the exception object. Raises ClusterUnavailable when no commit is possible.
        Without ``forward``, only a leader commits (and only while it leads)."""
        ...

    async def linearize(self) -> None:
        """Return once this replica reflects every write acknowledged before the call."""
        ...


def _raise_refusal(result: object) -> object:
    if isinstance(result, Exception):
        raise result
    return result


@attrs.define(eq=False)
class ReplicatedStore:
    """`Store` over a local replica and a command log."""

    _local: ReplicaStore
    _log: CommandLog

    async def _apply(self, cmd: Command, *, forward: bool = True) -> object:
        try:
            result = await self._log.apply(cmd, forward=forward)
        except CommandError as exc:  # not encodable (a naive datetime): refused like a store
            raise ValidationError(type(cmd).__name__, str(exc)) from None
        return _raise_refusal(result)

    async def linearize(self) -> None:
        await self._log.linearize()

    async def set_job(self, job: Job) -> Job:
        result = await self._apply(SetJob(job))
        if not isinstance(result, Job):
            raise StoreError(f"set_job returned {type(result).__name__}")
        return result

    async def get_job(self, name: str) -> Job:
        return await self._local.get_job(name)

    async def delete_job(self, name: str) -> Job:
        result = await self._apply(DeleteJob(name))
        if not isinstance(result, Job):
            raise StoreError(f"delete_job returned {type(result).__name__}")
        return result

    async def list_jobs(self, q: JobQuery) -> JobPage:
        return await self._local.list_jobs(q)

    async def put_execution(self, ex: Execution) -> None:
        await self._apply(PutExecution(ex))

    async def put_executions(self, executions: Sequence[Execution]) -> tuple[str, ...]:
        """Workers' reports in one entry; the ids of those whose job is gone (dropped)."""
        result = await self._apply(PutExecutions(tuple(executions)))
        assert isinstance(result, tuple)
        return result

    async def get_execution(self, job_name: str, execution_id: str) -> Execution:
        return await self._local.get_execution(job_name, execution_id)

    async def list_executions(self, job_name: str, q: ExecutionQuery) -> list[Execution]:
        return await self._local.list_executions(job_name, q)

    async def running_executions(self, job_name: str | None = None) -> list[Execution]:
        return await self._local.running_executions(job_name)

    async def delete_executions(self, job_name: str) -> int:
        result = await self._apply(DeleteExecutions(job_name))
        if not isinstance(result, int):
            raise StoreError(f"delete_executions returned {type(result).__name__}")
        return result

    async def record_missed(self, m: MissedTick) -> None:
        await self._apply(RecordMissed(m))

    async def list_missed(self, job_name: str, limit: int = 100) -> list[MissedTick]:
        return await self._local.list_missed(job_name, limit)

    async def get_cursor(self, job_name: str) -> datetime | None:
        return await self._local.get_cursor(job_name)

    async def schedule_state(self) -> list[tuple[Job, datetime | None]]:
        return await self._local.schedule_state()

    async def set_cursor(self, job_name: str, t: datetime) -> None:
        await self._apply(SetCursor(job_name, t), forward=False)  # the scheduler's too

    async def record_plans(self, plans: Sequence[PlanRecord]) -> PlansRecorded:
        result = await self._apply(RecordPlans(tuple(plans)), forward=False)  # leader only
        if not isinstance(result, PlansRecorded):
            raise StoreError(f"record_plans returned {type(result).__name__}")
        return result

    async def put_token(self, token: AclToken, *, bootstrap: bool = False) -> None:
        await self._apply(SetToken(token, bootstrap))

    async def delete_token(self, token_id: str) -> AclToken:
        result = await self._apply(DeleteToken(token_id))
        if not isinstance(result, AclToken):
            raise StoreError(f"delete_token returned {type(result).__name__}")
        return result

    async def list_tokens(self) -> list[AclToken]:
        return await self._local.list_tokens()

    async def find_token(self, secret_hash: str) -> AclToken | None:
        return await self._local.find_token(secret_hash)

    async def close(self) -> None:
        """The local replica belongs to the agent, which closes it."""
