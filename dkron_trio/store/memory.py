"""MemoryStore: the in-memory twin of SqliteStore, for tests and simulations.

It runs the same rules (`dkron_trio.store.rules`) on plain dicts. Each operation starts with
a Trio checkpoint, as a real store would, and then runs without awaiting, so it is atomic.
"""

from collections.abc import Sequence
from datetime import datetime

import attrs
import trio

from dkron_trio.acl import AclToken
from dkron_trio.execution import Execution, MissedTick, output_tail
from dkron_trio.job import Job
from dkron_trio.store import memory_image, rules
from dkron_trio.store.base import (
    ExecutionNotFound,
    ExecutionQuery,
    JobPage,
    JobQuery,
    PlanRecord,
    PlansRecorded,
    RaftMember,
    SortOrder,
)
from dkron_trio.store.replica import Mutation, check_index


@attrs.define
class _MemoryTx:
    """`rules.StoreTx` over the store's dicts."""

    _jobs: dict[str, Job] = attrs.field(factory=dict)
    _executions: dict[str, dict[str, Execution]] = attrs.field(factory=dict)
    _missed: dict[str, dict[datetime, MissedTick]] = attrs.field(factory=dict)
    _cursors: dict[str, datetime] = attrs.field(factory=dict)
    _applied: int = 0
    _members: dict[int, RaftMember] = attrs.field(factory=dict)
    _tokens: dict[str, AclToken] = attrs.field(factory=dict)

    def load_job(self, name: str) -> Job | None:
        return self._jobs.get(name)

    def save_job(self, job: Job) -> None:
        self._jobs[job.name] = job

    def remove_job(self, name: str) -> None:
        del self._jobs[name]
        self._executions.pop(name, None)
        self._missed.pop(name, None)
        self._cursors.pop(name, None)

    def load_execution(self, job_name: str, execution_id: str) -> Execution | None:
        return self._executions.get(job_name, {}).get(execution_id)

    def save_execution(self, ex: Execution) -> None:
        self._executions.setdefault(ex.job_name, {})[ex.id] = ex

    def latest_run(self, job_name: str) -> list[Execution]:
        finished = [ex for ex in self.executions(job_name) if ex.status.finished]
        if not finished:
            return []
        group = max(ex.group for ex in finished)
        return [ex for ex in finished if ex.group == group]

    def prune_executions(self, job_name: str, keep: int, before: datetime | None) -> None:
        table = self._executions.get(job_name, {})
        ranked = sorted(table.values(), key=lambda ex: (ex.started_at, ex.id), reverse=True)
        for rank, ex in enumerate(ranked):
            too_old = before is not None and ex.started_at < before
            if ex.status.finished and (rank >= keep or too_old):
                del table[ex.id]

    def clear_executions(self, job_name: str) -> int:
        return len(self._executions.pop(job_name, {}))

    def save_missed(self, m: MissedTick) -> None:
        self._missed.setdefault(m.job_name, {})[m.scheduled_at] = m

    def prune_missed(self, job_name: str, keep: int, before: datetime | None) -> None:
        table = self._missed.get(job_name, {})
        for rank, at in enumerate(sorted(table, reverse=True)):
            if rank >= keep or (before is not None and at < before):
                del table[at]

    def load_cursor(self, job_name: str) -> datetime | None:
        return self._cursors.get(job_name)

    def save_cursor(self, job_name: str, t: datetime) -> None:
        self._cursors[job_name] = t

    def load_applied(self) -> int:
        return self._applied

    def save_applied(self, index: int) -> None:
        self._applied = index

    def load_members(self) -> list[RaftMember]:
        return [self._members[i] for i in sorted(self._members)]

    def save_member(self, member: RaftMember) -> None:
        self._members[member.node_id] = member

    def remove_member(self, node_id: int) -> None:
        self._members.pop(node_id, None)

    def load_tokens(self) -> list[AclToken]:
        return sorted(self._tokens.values(), key=rules.token_order)

    def load_token(self, token_id: str) -> AclToken | None:
        return self._tokens.get(token_id)

    def save_token(self, token: AclToken) -> None:
        self._tokens[token.id] = token

    def remove_token(self, token_id: str) -> None:
        self._tokens.pop(token_id, None)

    def clone(self) -> "_MemoryTx":
        """A copy whose dicts are its own (the records are frozen and shared)."""
        return _MemoryTx(
            dict(self._jobs),
            {name: dict(table) for name, table in self._executions.items()},
            {name: dict(table) for name, table in self._missed.items()},
            dict(self._cursors),
            self._applied,
            dict(self._members),
            dict(self._tokens),
        )

    def cursors(self) -> dict[str, datetime]:
        return dict(self._cursors)

    def jobs(self) -> list[Job]:
        return list(self._jobs.values())

    def executions(self, job_name: str | None) -> list[Execution]:
        if job_name is None:
            return [ex for table in self._executions.values() for ex in table.values()]
        return list(self._executions.get(job_name, {}).values())

    def missed(self, job_name: str) -> list[MissedTick]:
        return list(self._missed.get(job_name, {}).values())


@attrs.define
class MemoryStore:
    """`Store` kept in memory; lost when the object goes."""

    _tx: _MemoryTx = attrs.field(factory=_MemoryTx)

    async def set_job(self, job: Job) -> Job:
        await trio.lowlevel.checkpoint()
        return rules.apply_set_job(self._tx, job)

    async def get_job(self, name: str) -> Job:
        await trio.lowlevel.checkpoint()
        return rules.require_job(self._tx, name)

    async def delete_job(self, name: str) -> Job:
        await trio.lowlevel.checkpoint()
        return rules.apply_delete_job(self._tx, name)

    async def list_jobs(self, q: JobQuery) -> JobPage:
        await trio.lowlevel.checkpoint()
        field = rules.job_sort_field(q)
        matching = [job for job in self._tx.jobs() if rules.job_matches(job, q)]
        matching.sort(
            key=lambda job: (rules.null_first(rules.job_columns(job)[field]), job.name),
            reverse=q.order is SortOrder.DESC,
        )
        return JobPage(matching[q.start : q.end], len(matching))

    async def put_execution(self, ex: Execution) -> None:
        await trio.lowlevel.checkpoint()
        rules.apply_put_execution(self._tx, ex)

    async def get_execution(self, job_name: str, execution_id: str) -> Execution:
        await trio.lowlevel.checkpoint()
        rules.require_job(self._tx, job_name)
        ex = self._tx.load_execution(job_name, execution_id)
        if ex is None:
            raise ExecutionNotFound(job_name, execution_id)
        return ex

    async def list_executions(self, job_name: str, q: ExecutionQuery) -> list[Execution]:
        await trio.lowlevel.checkpoint()
        field = rules.execution_sort_field(q)
        rules.require_job(self._tx, job_name)
        found = self._tx.executions(job_name)
        found.sort(
            key=lambda ex: (rules.null_first(rules.execution_sort_value(ex, field)), ex.id),
            reverse=q.order is SortOrder.DESC,
        )
        found = found[: q.limit]
        if q.output_size_limit is None:
            return found
        limit = q.output_size_limit
        return [_tail(ex, limit) for ex in found]

    async def running_executions(self, job_name: str | None = None) -> list[Execution]:
        await trio.lowlevel.checkpoint()
        running = [ex for ex in self._tx.executions(job_name) if not ex.status.finished]
        return sorted(running, key=lambda ex: (ex.started_at, ex.job_name, ex.id))

    async def delete_executions(self, job_name: str) -> int:
        await trio.lowlevel.checkpoint()
        return rules.apply_delete_executions(self._tx, job_name)

    async def record_missed(self, m: MissedTick) -> None:
        await trio.lowlevel.checkpoint()
        rules.apply_record_missed(self._tx, m)

    async def list_missed(self, job_name: str, limit: int = 100) -> list[MissedTick]:
        await trio.lowlevel.checkpoint()
        rules.require_job(self._tx, job_name)
        found = sorted(self._tx.missed(job_name), key=lambda m: m.scheduled_at, reverse=True)
        return found[: max(limit, 0)]

    async def get_cursor(self, job_name: str) -> datetime | None:
        await trio.lowlevel.checkpoint()
        rules.require_job(self._tx, job_name)
        return self._tx.load_cursor(job_name)

    async def schedule_state(self) -> list[tuple[Job, datetime | None]]:
        await trio.lowlevel.checkpoint()
        return [(job, self._tx.load_cursor(job.name)) for job in self._tx.jobs()]

    async def set_cursor(self, job_name: str, t: datetime) -> None:
        await trio.lowlevel.checkpoint()
        rules.apply_set_cursor(self._tx, job_name, t)

    async def record_plans(self, plans: Sequence[PlanRecord]) -> PlansRecorded:
        await trio.lowlevel.checkpoint()
        return PlansRecorded(None, rules.apply_record_plans(self._tx, plans))

    async def put_token(self, token: AclToken, *, bootstrap: bool = False) -> None:
        await trio.lowlevel.checkpoint()
        rules.apply_set_token(self._tx, token, bootstrap)

    async def delete_token(self, token_id: str) -> AclToken:
        await trio.lowlevel.checkpoint()
        return rules.apply_delete_token(self._tx, token_id)

    async def list_tokens(self) -> list[AclToken]:
        await trio.lowlevel.checkpoint()
        return self._tx.load_tokens()

    async def find_token(self, secret_hash: str) -> AclToken | None:
        await trio.lowlevel.checkpoint()
        return rules.find_token(self._tx, secret_hash)

    async def close(self) -> None:
        await trio.lowlevel.checkpoint()

    async def applied_index(self) -> int:
        await trio.lowlevel.checkpoint()
        return self._tx.load_applied()

    async def apply_replicated(self, index: int, mutations: Sequence[Mutation]) -> list[object]:
        """Applied to a copy that replaces the state only when every mutation succeeded."""
        await trio.lowlevel.checkpoint()
        check_index(self._tx.load_applied(), index)
        tx = self._tx.clone()
        results = [mutation(tx) for mutation in mutations]
        tx.save_applied(index)
        self._tx = tx
        return results

    async def raft_members(self) -> list[RaftMember]:
        await trio.lowlevel.checkpoint()
        return self._tx.load_members()

    async def snapshot_image(self) -> tuple[int, bytes]:
        await trio.lowlevel.checkpoint()
        return self._tx.load_applied(), memory_image.encode(self._tx)

    async def restore_image(self, image: bytes) -> int:
        await trio.lowlevel.checkpoint()
        tx = _MemoryTx()
        if image:
            memory_image.decode(image, tx)
        self._tx = tx
        return tx.load_applied()


def _tail(ex: Execution, limit: int) -> Execution:
    output, cut = output_tail(ex.output, limit)
    return attrs.evolve(ex, output=output, output_truncated=cut) if cut else ex
