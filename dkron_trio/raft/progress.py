"""The leader's view of each follower's log (etcd-raft's Progress).

PROBE: one APPEND at a time until the follower's match is found. REPLICATE: pipeline up
to `max_inflight_msgs` APPENDs optimistically. SNAPSHOT: the follower is behind the
leader's first index; an InstallSnapshot transfer runs chunk by chunk.
"""

from __future__ import annotations

import enum
from collections import deque

import attrs

from dkron_trio.raft.types import Snapshot


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


@attrs.define
class Inflights:
    """Last index of each APPEND sent but not yet acknowledged, oldest first."""

    _capacity: int
    _last_indexes: deque[int] = attrs.Factory(deque)

    def add(self, index: int) -> None:
        self._last_indexes.append(index)

    def free_le(self, index: int) -> None:
        while self._last_indexes and self._last_indexes[0] <= index:
            self._last_indexes.popleft()

    def free_first_one(self) -> None:
        if self._last_indexes:
            self._last_indexes.popleft()

    def full(self) -> bool:
        return len(self._last_indexes) >= self._capacity

    def reset(self) -> None:
        self._last_indexes.clear()

    def __len__(self) -> int:
        return len(self._last_indexes)


SNAPSHOT_RESEND_AFTER = 2
"""Heartbeat responses seen with a chunk still unacknowledged before it is sent again."""


@attrs.define
class Progress:
    match: int
    next: int
    inflights: Inflights
    is_learner: bool = False
    state: ProgressState = ProgressState.PROBE
    probe_sent: bool = False
    """PROBE: an APPEND is outstanding; wait for its answer (or a heartbeat response)."""
    recent_active: bool = False
    pending_snapshot: Snapshot | None = None
    snapshot_offset: int = 0
    """SNAPSHOT: bytes of `pending_snapshot.data` the follower has acknowledged."""
    snapshot_stall: int = 0
    """SNAPSHOT: heartbeat responses since the last chunk acknowledgement."""

    def become_probe(self) -> None:
        if self.state is ProgressState.SNAPSHOT and self.pending_snapshot is not None:
            self.next = max(self.match + 1, self.pending_snapshot.meta.index + 1)
        else:
            self.next = self.match + 1
        self._reset(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self._reset(ProgressState.REPLICATE)

    def become_snapshot(self, snapshot: Snapshot) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = None
        self.snapshot_offset = 0
        self.snapshot_stall = 0
        self.inflights.reset()

    def maybe_update(self, index: int) -> bool:
        """An APPEND_RESPONSE accepted up to `index`; False if it tells nothing new."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """An APPEND probing at `rejected` was refused; False if the refusal is stale."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def sent_entries(self, last_index: int | None) -> None:
        """Record an APPEND carrying entries up to `last_index` (None: no entries)."""
        if self.state is ProgressState.REPLICATE:
            if last_index is not None:
                self.next = last_index + 1
                self.inflights.add(last_index)
        elif self.state is ProgressState.PROBE:
            self.probe_sent = True

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        if self.state is ProgressState.REPLICATE:
            return self.inflights.full()
        return True
