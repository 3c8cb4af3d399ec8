"""StoreStateMachine: applies committed commands to a `Store`, the same way on every server.

It implements the Raft node's `StateMachine`. Each committed entry gets one result:

* a normal entry holding a command: the store's return value (`SetJob`/`DeleteJob` -> the
  `Job`, `DeleteExecutions` -> the count, the others -> None), or the exception the store's
  rules refused it with (`REFUSALS`), returned as a value, not raised. A refusal is a
  deterministic outcome every server reaches alike and the store is left unchanged; the
  proposer receives it from `RaftNode.propose` and decides what to tell its caller.
* an empty normal entry (a new leader's barrier) or a membership change: None.
* a normal entry that is not a valid command: the `CommandError`, and the entry is skipped
  (counted in `malformed` and logged). Only a bug can put one there, since proposers encode
  with `encode_command`, which refuses anything `decode_command` would not read back. Every
  server skips the same entry, so their stores still agree; stopping instead would make one
  bad entry stop the whole cluster on every restart.

Any other exception (the disk, a closed store) is not a property of the command and may
differ between servers, so it propagates and stops the node rather than let it diverge.

Entries are applied one at a time, in log order: `Store` has no multi-mutation transaction
yet, so a SQLite store commits (and fsyncs) once per command.
"""

from collections.abc import Sequence

import attrs

from dkron_trio.commands import (
    Command,
    CommandError,
    DeleteExecutions,
    DeleteJob,
    PutExecution,
    RecordMissed,
    RecordPlan,
    SetCursor,
    SetJob,
    decode_command,
)
from dkron_trio.job import ValidationError
from dkron_trio.logs import get_logger
from dkron_trio.raft.types import Entry, EntryType, Snapshot
from dkron_trio.store.base import (
    DependencyCycle,
    JobHasChildren,
    JobNotFound,
    ParentNotFound,
    Store,
)

log = get_logger(__name__)

REFUSALS = (ValidationError, JobNotFound, ParentNotFound, DependencyCycle, JobHasChildren)
"""The errors the store's rules refuse a mutation with, before writing anything."""


class SnapshotUnsupported(Exception):
    """The store cannot replace its state with a snapshot image (no store offers it yet)."""


@attrs.define(eq=False)
class StoreStateMachine:
    """Create with `StoreStateMachine(store)` and pass it to `RaftNode`."""

    _store: Store
    _malformed: int = 0

    @property
    def malformed(self) -> int:
        """Committed entries skipped because they held no valid command."""
        return self._malformed

    async def apply(self, entries: Sequence[Entry]) -> Sequence[object]:
        return [await self._apply_one(entry) for entry in entries]

    async def restore(self, snapshot: Snapshot) -> None:
        """Refused: no store can load a snapshot image yet, so this machine never asks the
        node to compact (`RaftNode.compact`) and a snapshot only arrives by misconfiguration;
        raising stops the node instead of running on with a stale store."""
        raise SnapshotUnsupported(
            f"cannot restore snapshot at index {snapshot.meta.index}: "
            "the store has no snapshot support"
        )

    async def _apply_one(self, entry: Entry) -> object:
        if entry.type is not EntryType.NORMAL or not entry.data:
            return None
        try:
            cmd = decode_command(entry.data)
        except CommandError as exc:
            self._malformed += 1
            log.error(
                "malformed command skipped",
                index=entry.index,
                term=entry.term,
                size=len(entry.data),
                error=str(exc),
            )
            return exc
        try:
            return await _apply_command(self._store, cmd)
        except REFUSALS as exc:
            return exc


async def _apply_command(store: Store, cmd: Command) -> object:
    match cmd:
        case SetJob(job):
            return await store.set_job(job)
        case DeleteJob(name):
            return await store.delete_job(name)
        case PutExecution(ex):
            await store.put_execution(ex)
        case DeleteExecutions(job_name):
            return await store.delete_executions(job_name)
        case RecordMissed(missed):
            await store.record_missed(missed)
        case SetCursor(job_name, t):
            await store.set_cursor(job_name, t)
        case RecordPlan(job_name, cursor, missed, started):
            await store.record_plan(job_name, cursor, missed, started)
    return None
