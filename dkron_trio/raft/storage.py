"""The durable log as the Raft core sees it: a narrow read-only Protocol, plus the in-memory
twin used by tests and the simulator.

The core never writes to storage; the shell persists what each Ready hands it (entries,
hard state, snapshots, compactions) and the core reads it back from here. Index 0 / term 0
is the empty log's sentinel; a fresh cluster is bootstrapped with an index-0 snapshot that
carries the initial membership.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Protocol

import attrs

from dkron_trio.raft.errors import InvalidRequest, LogCompacted, LogUnavailable
from dkron_trio.raft.types import (
    EMPTY_SNAPSHOT,
    ConfState,
    Entry,
    HardState,
    Ready,
    Snapshot,
    SnapshotMeta,
)


class RaftStorage(Protocol):
    """Read access to the persisted log, hard state and latest snapshot."""

    def initial_state(self) -> tuple[HardState, ConfState]:
        """The persisted hard state and the membership of the latest snapshot (the core
        replays later membership changes from the log up to `applied`)."""
        ...

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries [lo, hi). With `max_size`, stop once the data exceeds it, but always
        return at least one entry. Raises LogCompacted if lo < first_index(),
        LogUnavailable if hi > last_index() + 1."""
        ...

    def term(self, index: int) -> int:
        """Term of the entry at `index`, valid for first_index() - 1 <= index <= last_index()
        (first_index() - 1 is the snapshot/compaction point). Raises LogCompacted or
        LogUnavailable outside that range."""
        ...

    def first_index(self) -> int:
        """Index of the first entry still held (compaction point + 1)."""
        ...

    def last_index(self) -> int:
        """Index of the last entry held (first_index() - 1 when the log is empty)."""
        ...

    def snapshot(self) -> Snapshot:
        """The most recent snapshot (the bootstrap snapshot at index 0 if none was taken)."""
        ...


BOOTSTRAP_INDEX = 1
BOOTSTRAP_TERM = 1


def bootstrap_snapshot(conf_state: ConfState) -> Snapshot:
    """The state every initial member of a new cluster starts from: a snapshot at index 1,
    term 1, holding the initial membership and an empty state machine (data b"").

    Membership lives in a snapshot rather than in log entries so that a node joining later
    with an empty log learns it the same way (the leader has no entry 1 to send, so it
    sends this snapshot), and so the initial members can campaign at once."""
    return Snapshot(SnapshotMeta(BOOTSTRAP_INDEX, BOOTSTRAP_TERM, conf_state), b"")


def limit_size(entries: Sequence[Entry], max_size: int | None) -> list[Entry]:
    """Longest prefix whose data fits `max_size`, but never fewer than one entry."""
    if max_size is None:
        return list(entries)
    total = 0
    for n, entry in enumerate(entries):
        total += len(entry.data)
        if total > max_size and n > 0:
            return list(entries[:n])
    return list(entries)


class LogView:
    """The log as held in memory, and the RaftStorage reads over it; shared by the memory
    twin and by SqliteRaftStorage, which keeps the same view in front of its file.
    Subclasses (attrs classes) declare these fields themselves."""

    __slots__ = ()
    _hard_state: HardState
    _snapshot: Snapshot
    _offset: int
    """Index of the compaction point; _entries[0] has index _offset + 1."""
    _offset_term: int
    _entries: list[Entry]

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.meta.conf_state

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries [lo, hi); with `max_size`, the longest prefix whose data fits, but never
        fewer than one entry (replication batches stop early rather than copy the range)."""
        if lo <= self._offset:
            raise LogCompacted(f"entry {lo} compacted (first index {self._offset + 1})")
        if hi > self.last_index() + 1:
            raise LogUnavailable(f"entries up to {hi - 1} unavailable (last {self.last_index()})")
        if lo >= hi:
            return []
        start, stop = lo - self._offset - 1, hi - self._offset - 1
        if max_size is None:
            return self._entries[start:stop]
        out: list[Entry] = []
        total = 0
        for entry in itertools.islice(self._entries, start, stop):
            total += len(entry.data)
            if total > max_size and out:
                break
            out.append(entry)
        return out

    def term(self, index: int) -> int:
        if index < self._offset:
            raise LogCompacted(f"term of {index} compacted (first index {self._offset + 1})")
        if index > self.last_index():
            raise LogUnavailable(f"term of {index} unavailable (last {self.last_index()})")
        if index == self._offset:
            return self._offset_term
        return self._entries[index - self._offset - 1].term

    def first_index(self) -> int:
        return self._offset + 1

    def last_index(self) -> int:
        return self._offset + len(self._entries)

    def snapshot(self) -> Snapshot:
        return self._snapshot


@attrs.define(init=False)
class MemoryRaftStorage(LogView):
    """In-memory RaftStorage with the write operations a shell performs."""

    _hard_state: HardState
    _snapshot: Snapshot
    _offset: int
    _offset_term: int
    _entries: list[Entry]

    def __init__(self, conf_state: ConfState | None = None) -> None:
        """With a membership: an initial member of a new cluster, bootstrapped (see
        `bootstrap_snapshot`). Without (or with an empty one): a node that will join an
        existing cluster and waits, empty, for its leader to contact it."""
        snapshot = EMPTY_SNAPSHOT
        hard_state = HardState()
        if conf_state is not None and conf_state.members:
            snapshot = bootstrap_snapshot(conf_state)
            hard_state = HardState(term=snapshot.meta.term, commit=snapshot.meta.index)
        self.__attrs_init__(
            hard_state=hard_state,
            snapshot=snapshot,
            offset=snapshot.meta.index,
            offset_term=snapshot.meta.term,
            entries=[],
        )

    # -- writes -----------------------------------------------------------------------

    def set_hard_state(self, hard_state: HardState) -> None:
        self._hard_state = hard_state

    def append(self, entries: Sequence[Entry]) -> None:
        """Append contiguous entries; an entry at index i replaces stored entries >= i.
        Entries at or below the compaction point are skipped (already covered)."""
        if not entries:
            return
        for prev, nxt in itertools.pairwise(entries):
            if nxt.index != prev.index + 1:
                raise InvalidRequest(f"entries not contiguous at {prev.index} -> {nxt.index}")
        first = entries[0].index
        if first > self.last_index() + 1:
            raise InvalidRequest(
                f"append at {first} leaves a gap after last index {self.last_index()}"
            )
        entries = [e for e in entries if e.index > self._offset]
        if not entries:
            return
        keep = entries[0].index - self._offset - 1
        del self._entries[keep:]
        self._entries.extend(entries)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Install a snapshot received from the leader: it replaces the whole log."""
        if snapshot.meta.index <= self._snapshot.meta.index and self._snapshot.meta.index > 0:
            raise InvalidRequest(
                f"snapshot {snapshot.meta.index} not newer than {self._snapshot.meta.index}"
            )
        self._snapshot = snapshot
        self._offset = snapshot.meta.index
        self._offset_term = snapshot.meta.term
        self._entries = []

    def set_snapshot(self, snapshot: Snapshot) -> None:
        """Record a locally taken snapshot (the log is not touched)."""
        if snapshot.meta.index < self._snapshot.meta.index:
            raise InvalidRequest(
                f"snapshot {snapshot.meta.index} older than {self._snapshot.meta.index}"
            )
        if snapshot.meta.index > self.last_index():
            raise InvalidRequest(
                f"snapshot {snapshot.meta.index} beyond last index {self.last_index()}"
            )
        self._snapshot = snapshot

    def compact(self, compact_index: int) -> None:
        """Discard entries up to and including `compact_index`."""
        if compact_index <= self._offset:
            return
        if compact_index > self.last_index():
            raise InvalidRequest(
                f"compact index {compact_index} beyond last index {self.last_index()}"
            )
        term = self.term(compact_index)
        del self._entries[: compact_index - self._offset]
        self._offset = compact_index
        self._offset_term = term

    def save(self, ready: Ready) -> None:
        """Persist a Ready in the contract's order (what a shell's persist step does)."""
        if ready.snapshot is not None:
            self.apply_snapshot(ready.snapshot)
        self.append(ready.entries)
        if ready.hard_state is not None:
            self.set_hard_state(ready.hard_state)
        if ready.compaction is not None:
            self.set_snapshot(ready.compaction.snapshot)
            self.compact(ready.compaction.compact_index)
