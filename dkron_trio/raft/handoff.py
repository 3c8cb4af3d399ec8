"""The core's side of the Ready contract: what it holds for the shell, and what the shell
has acknowledged so far.

The protocol decides what happens; this decides when the shell hears of it (as etcd-raft
splits raft from RawNode). Messages, answered reads and a compaction wait here for the
next Ready; hard and soft state go out only when they changed since the last one; and
the term and vote last persisted gate the heartbeats the shell may send early, since
those carry the term and it must be durable.
"""

from __future__ import annotations

import attrs

from dkron_trio.raft.log import RaftLog
from dkron_trio.raft.types import (
    NONE,
    Compaction,
    HardState,
    Message,
    MessageType,
    ReadState,
    Ready,
    Role,
    SoftState,
)

_HEARTBEATS = frozenset({MessageType.HEARTBEAT, MessageType.HEARTBEAT_RESPONSE})


@attrs.define
class Handoff:
    _log: RaftLog
    _max_committed_size: int
    _prev_hard_state: HardState
    _durable_vote: tuple[int, int]
    """The (term, vote) last persisted: handed out in a Ready that has been advanced."""
    _prev_soft_state: SoftState
    outbox: list[Message] = attrs.Factory(list)
    """Messages for the next Ready (the leadership, if any, appends to it too)."""
    read_states: list[ReadState] = attrs.Factory(list)
    """Answered local reads for the next Ready (shared like the outbox)."""
    compaction: Compaction | None = None

    @classmethod
    def opened(cls, log: RaftLog, max_committed_size: int, hard_state: HardState) -> Handoff:
        """On persisted state: nothing handed out yet, `hard_state` already durable."""
        durable_vote = (hard_state.term, hard_state.vote)
        no_leader = SoftState(NONE, Role.FOLLOWER)
        return cls(log, max_committed_size, hard_state, durable_vote, no_leader)

    def has_ready(self, hard_state: HardState, soft_state: SoftState) -> bool:
        return bool(
            self.outbox
            or self.read_states
            or self.compaction is not None
            or self._log.next_unstable_entries()
            or self._log.next_unstable_snapshot() is not None
            or self._log.has_next_committed_entries()
            or hard_state != self._prev_hard_state
            or soft_state != self._prev_soft_state
        )

    def ready(self, hard_state: HardState, soft_state: SoftState) -> Ready:
        """Hand out everything pending; the log counts it as handed out."""
        entries = self._log.next_unstable_entries()
        snapshot = self._log.next_unstable_snapshot()
        committed = self._log.next_committed_entries(self._max_committed_size)
        hs_changed = hard_state != self._prev_hard_state
        must_sync = (
            bool(entries)
            or snapshot is not None
            or (
                hs_changed
                and (
                    hard_state.term != self._prev_hard_state.term
                    or hard_state.vote != self._prev_hard_state.vote
                )
            )
        )
        ready = Ready(
            hard_state=hard_state if hs_changed else None,
            soft_state=soft_state if soft_state != self._prev_soft_state else None,
            entries=tuple(entries),
            snapshot=snapshot,
            compaction=self.compaction,
            messages=tuple(self.outbox),
            committed_entries=tuple(committed),
            read_states=tuple(self.read_states),
            must_sync=must_sync,
        )
        self.outbox.clear()
        self.read_states.clear()
        self.compaction = None
        self._prev_hard_state = hard_state
        self._prev_soft_state = soft_state
        self._log.accept_ready(snapshot, committed)
        return ready

    def persisted(self, ready: Ready) -> None:
        """The shell persisted `ready` and restored its snapshot (if any)."""
        if ready.snapshot is not None:
            self._log.stable_snap_to(ready.snapshot.meta.index)
            self._log.applied_to(ready.snapshot.meta.index)
        if ready.entries:
            last = ready.entries[-1]
            self._log.stable_to(last.index, last.term)
        if ready.hard_state is not None:
            self._durable_vote = (ready.hard_state.term, ready.hard_state.vote)

    def take_heartbeats(self, term: int, vote: int) -> list[Message]:
        """The heartbeats and replies in the outbox, unless `term` and `vote` still wait
        to be persisted (see RaftCore.take_heartbeats)."""
        if (term, vote) != self._durable_vote:
            return []
        beats = [m for m in self.outbox if m.type in _HEARTBEATS]
        if beats:
            self.outbox[:] = [m for m in self.outbox if m.type not in _HEARTBEATS]
        return beats
