"""StoreStateMachine: applies committed entries to a `ReplicaStore`, the same way on every server.

It implements the Raft node's `StateMachine`. Each ready batch of committed entries is applied
in one store transaction together with the index of its last entry (`apply_replicated`), so
the state and its applied index never disagree and a SQLite store fsyncs once per batch.
Each entry gets one result:

* a normal entry holding a command: the store's return value (`SetJob`/`DeleteJob` -> the
  `Job`, `DeleteExecutions` -> the count, `DeleteToken` -> the `AclToken`, the others ->
  None), or the exception the store's rules refused it with (`REFUSALS`), returned as a
  value, not raised. A refusal is a
  deterministic outcome every server reaches alike and the store is left unchanged; the
  proposer receives it from `RaftNode.propose` and decides what to tell its caller.
* a membership change: None; the member's name and RPC address (the change's context) are
  recorded in the replicated state, or removed with the member.
* an empty normal entry (a new leader's barrier): None.
* a normal entry that is not a valid command, or a membership change whose context is not
  a member: the `CommandError`, and the entry is skipped (counted in `malformed` and logged).
  Only a bug can put one there. Every server skips the same entry, so their stores still
  agree; stopping instead would make one bad entry stop the whole cluster on every restart.

Any other exception (the disk, a closed store) is not a property of the command and may
differ between servers, so it propagates and stops the node rather than let it diverge.
"""

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import trio

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
    SetMember,
    SetToken,
    decode_entry,
    decode_member,
)
from dkron_trio.execution import Execution, MissedTick
from dkron_trio.job import ValidationError
from dkron_trio.logs import get_logger
from dkron_trio.raft.codec import CodecError, decode_conf_change
from dkron_trio.raft.types import ConfChangeType, Entry, EntryType, Snapshot
from dkron_trio.store import rules
from dkron_trio.store.base import (
    AclBootstrapDone,
    DependencyCycle,
    JobHasChildren,
    JobNotFound,
    ParentNotFound,
    PlanRecord,
    PlansRecorded,
    RaftMember,
    StoreError,
    TokenExists,
    TokenNotFound,
)
from dkron_trio.store.replica import Mutation, ReplicaStore
from dkron_trio.store.rules import StoreTx

log = get_logger(__name__)

REFUSALS = (
    ValidationError,
    JobNotFound,
    ParentNotFound,
    DependencyCycle,
    JobHasChildren,
    TokenExists,
    TokenNotFound,
    AclBootstrapDone,
)
"""The errors the store's rules refuse a mutation with, before writing anything."""


KNOWN_COMMANDS = 1024
"""Commands proposed through this server that `StoreStateMachine.expect` keeps, at most
(one whose entry never commits stays until newer ones push it out)."""


DECODE_OFF_LOOP = 64 * 1024
"""Bytes of entries to decode (those not proposed here) above which a batch is decoded on a
worker thread: a follower catching up decodes megabytes at once, which would otherwise hold
the event loop for hundreds of milliseconds, its heartbeat replies with it."""


class SnapshotMismatch(StoreError):
    """A snapshot whose image reflects another index than its metadata says."""


@attrs.define(eq=False)
class StoreStateMachine:
    """Create with `StoreStateMachine(store)` and pass it to `RaftNode`."""

    _store: ReplicaStore
    _on_members: Callable[[], None] | None = None
    """Called after a batch that changed the members' records, and after a restore."""
    _on_jobs: Callable[[list[str]], None] | None = None
    """Called after a batch with the names of the jobs it set or deleted (the scheduler
    learns of writes made through any server this way)."""
    _malformed: int = 0
    _members_touched: bool = False
    _jobs_touched: list[str] = attrs.field(factory=list)
    _on_executions: Callable[[list[Execution]], None] | None = None
    """Called after a batch with the execution records it wrote (waiters for outcomes)."""
    _executions_touched: list[Execution] = attrs.field(factory=list)
    _on_missed: Callable[[list[MissedTick]], None] | None = None
    """Called after a batch with the missed ticks it recorded (metrics)."""
    _missed_touched: list[tuple[int, tuple[MissedTick, ...]]] = attrs.field(factory=list)
    """(position in the batch, ticks) of each command recording missed ticks."""
    _plans_touched: list[tuple[int, RecordPlans]] = attrs.field(factory=list)
    """(position in the batch, fenced plans) of each batch of plans."""
    _outcomes_touched: list[tuple[int, PutExecutions]] = attrs.field(factory=list)
    """(position in the batch, command) of each batch of reported executions."""
    _known: dict[bytes, Command] = attrs.field(factory=dict)
    """Bytes proposed through this server -> the command they encode (see `expect`)."""

    def expect(self, data: bytes, cmd: Command) -> None:
        """`data` is `encode_command(cmd)`, whose round trip was checked: when an entry
        holding these bytes is applied here, `cmd` is used rather than decoding them again
        (a proposer's own command would otherwise be decoded once more on this server)."""
        known = self._known
        if len(known) >= KNOWN_COMMANDS:
            del known[next(iter(known))]
        known[data] = cmd

    @property
    def malformed(self) -> int:
        """Committed entries skipped because they held no valid command."""
        return self._malformed

    async def apply(self, entries: Sequence[Entry]) -> Sequence[object]:
        if not entries:
            return []
        self._members_touched = False
        self._jobs_touched = []
        self._executions_touched = []
        self._missed_touched = []
        self._plans_touched = []
        self._outcomes_touched = []
        known = [self._known.pop(e.data, None) if e.data else None for e in entries]
        unknown = sum(len(e.data) for e, cmd in zip(entries, known, strict=True) if cmd is None)
        if unknown > DECODE_OFF_LOOP:
            decoded = await trio.to_thread.run_sync(_decode_all, entries, known)
        else:
            decoded = _decode_all(entries, known)
        mutations = [
            self._mutation(position, entry, cmd)
            for position, (entry, cmd) in enumerate(zip(entries, decoded, strict=True))
        ]
        results = await self._store.apply_replicated(entries[-1].index, mutations)
        self._note_plans(results)
        self._note_outcomes(results)
        if self._members_touched and self._on_members is not None:
            self._on_members()
        if self._jobs_touched and self._on_jobs is not None:
            self._on_jobs(self._jobs_touched)
        if self._executions_touched and self._on_executions is not None:
            self._on_executions(self._executions_touched)
        if self._missed_touched and self._on_missed is not None:
            missed = [
                tick
                for position, ticks in self._missed_touched
                if not isinstance(results[position], Exception)
                for tick in ticks
            ]
            if missed:
                self._on_missed(missed)
        return results

    def _note_plans(self, results: Sequence[object]) -> None:
        """The executions and missed ticks of the plans stored (not of refused ones)."""
        for position, cmd in self._plans_touched:
            result = results[position]
            if not isinstance(result, PlansRecorded):
                continue
            for plan in cmd.plans:
                if plan.job_name in result.refused:
                    continue
                self._executions_touched += plan.started
                if plan.missed:
                    self._missed_touched.append((position, plan.missed))

    def _note_outcomes(self, results: Sequence[object]) -> None:
        """The reported executions stored (not those of jobs deleted meanwhile)."""
        for position, cmd in self._outcomes_touched:
            refused = results[position]
            if not isinstance(refused, tuple):
                continue
            self._executions_touched += [e for e in cmd.executions if e.id not in refused]

    async def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole state with the snapshot's image. An empty image is the state of
        a cluster's bootstrap snapshot: nothing applied yet, at the snapshot's index."""
        applied = await self._store.restore_image(snapshot.data)
        if not snapshot.data and snapshot.meta.index > applied:
            await self._store.apply_replicated(snapshot.meta.index, [])
            applied = snapshot.meta.index
        if applied != snapshot.meta.index:
            raise SnapshotMismatch(
                f"snapshot for index {snapshot.meta.index} holds a state at index {applied}"
            )
        if self._on_members is not None:
            self._on_members()

    def _mutation(self, position: int, entry: Entry, decoded: "_Decoded") -> Mutation:
        try:
            if entry.type is EntryType.CONF_CHANGE:
                self._members_touched = True
                return _membership(entry)
        except (CommandError, CodecError) as error:
            return self._skip(entry, error)
        if decoded is None:
            return _nothing
        if isinstance(decoded, CommandError | CodecError):
            return self._skip(entry, decoded)
        cmd = decoded
        if isinstance(cmd, SetMember):
            self._members_touched = True
        elif isinstance(cmd, SetJob):
            self._jobs_touched.append(cmd.job.name)
        elif isinstance(cmd, DeleteJob):
            self._jobs_touched.append(cmd.name)
        elif isinstance(cmd, RecordMissed):
            self._missed_touched.append((position, (cmd.missed,)))
        elif isinstance(cmd, RecordPlans):
            self._plans_touched.append((position, cmd))
            return lambda tx: _record_plans(tx, cmd, entry.index)
        elif isinstance(cmd, PutExecution):
            self._executions_touched.append(cmd.execution)
        elif isinstance(cmd, PutExecutions):
            self._outcomes_touched.append((position, cmd))
        return lambda tx: _apply_command(tx, cmd)

    def _skip(self, entry: Entry, error: CommandError | CodecError) -> Mutation:
        self._malformed += 1
        log.error(
            "malformed entry skipped",
            index=entry.index,
            term=entry.term,
            size=len(entry.data),
            error=str(error),
        )
        return _outcome(error)


_Decoded = Command | CommandError | CodecError | None
"""An entry's command (a batch of plans already fenced), the error decoding it failed with,
or None: an empty entry (a barrier), or a membership change (decoded as it is applied)."""


def _decode_all(entries: Sequence[Entry], known: Sequence[Command | None]) -> list[_Decoded]:
    """The commands of a batch of entries: pure, so a large batch is decoded on a worker
    thread while the event loop goes on (heartbeats included)."""
    return [_decode(entry, cmd) for entry, cmd in zip(entries, known, strict=True)]


def _decode(entry: Entry, known: Command | None) -> _Decoded:
    if entry.type is EntryType.CONF_CHANGE or not entry.data:
        return None
    try:
        cmd = decode_entry(entry.data) if known is None else known
    except (CommandError, CodecError) as error:
        return error
    return _fenced(cmd, entry.index) if isinstance(cmd, RecordPlans) else cmd


def _nothing(_tx: StoreTx) -> None:
    return None


def _fenced(cmd: RecordPlans, index: int) -> RecordPlans:
    """The plans with their started executions fenced by the entry's log index (every
    replica, every run: built directly, `attrs.evolve` costs several times more)."""
    return RecordPlans(
        tuple(
            PlanRecord(
                plan.job_name,
                plan.cursor,
                plan.missed,
                tuple(Execution(**_fields_of(e), fence=index) for e in plan.started),
            )
            for plan in cmd.plans
        )
    )


_EXECUTION_FIELDS = tuple(f.name for f in attrs.fields(Execution) if f.name != "fence")


def _fields_of(execution: Execution) -> dict[str, Any]:
    """Every field of `execution` but its fence."""
    return {name: getattr(execution, name) for name in _EXECUTION_FIELDS}


def _record_plans(tx: StoreTx, cmd: RecordPlans, index: int) -> PlansRecorded:
    return PlansRecorded(index, rules.apply_record_plans(tx, cmd.plans))


def _outcome(value: object) -> Mutation:
    return lambda _tx: value


def _membership(entry: Entry) -> Mutation:
    change = decode_conf_change(entry.data)
    if change.type is ConfChangeType.REMOVE_NODE:
        return lambda tx: rules.apply_remove_member(tx, change.node_id)
    if not change.context:
        return _nothing
    name, address = decode_member(change.context)
    member = RaftMember(change.node_id, name, address)
    return lambda tx: rules.apply_add_member(tx, member)


def _apply_command(tx: StoreTx, cmd: Command) -> object:
    try:
        match cmd:
            case SetJob(job):
                return rules.apply_set_job(tx, job)
            case DeleteJob(name):
                return rules.apply_delete_job(tx, name)
            case PutExecution(ex):
                rules.apply_put_execution(tx, ex)
            case PutExecutions(executions):
                return rules.apply_put_executions(tx, executions)
            case DeleteExecutions(job_name):
                return rules.apply_delete_executions(tx, job_name)
            case RecordMissed(missed):
                rules.apply_record_missed(tx, missed)
            case SetCursor(job_name, t):
                rules.apply_set_cursor(tx, job_name, t)
            case SetMember(node_id, name, address):
                rules.apply_add_member(tx, RaftMember(node_id, name, address))
            case SetToken(token, bootstrap):
                rules.apply_set_token(tx, token, bootstrap)
            case DeleteToken(token_id):
                return rules.apply_delete_token(tx, token_id)
    except REFUSALS as exc:
        return exc
    return None
