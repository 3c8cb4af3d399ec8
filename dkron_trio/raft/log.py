"""The Raft log as the core sees it: persisted entries (storage) plus an unstable tail.

New entries (proposals on the leader, appends on followers) and a received snapshot live
in `Unstable` until the shell reports them persisted through `RaftCore.advance`; then the
core reads them back from storage. Entries handed out in a Ready but not yet advanced are
"in progress" so a second Ready does not repeat them.
"""

from __future__ import annotations

import attrs

from dkron_trio.raft.errors import InvariantViolated, LogCompacted, LogUnavailable
from dkron_trio.raft.storage import RaftStorage, limit_size
from dkron_trio.raft.types import Entry, Snapshot


@attrs.define
class Unstable:
    """Entries and snapshot not yet persisted. `_entries[0]` has index `_offset`."""

    _offset: int
    _entries: list[Entry] = attrs.Factory(list)
    _snapshot: Snapshot | None = None
    _in_progress: int = attrs.field(default=0)
    """Entries below this index were handed to the shell in a Ready."""
    _snapshot_in_progress: bool = False

    def __attrs_post_init__(self) -> None:
        self._in_progress = self._offset

    @property
    def offset(self) -> int:
        return self._offset

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    @property
    def has_entries(self) -> bool:
        return bool(self._entries)

    def maybe_first_index(self) -> int | None:
        return self._snapshot.meta.index + 1 if self._snapshot is not None else None

    def maybe_last_index(self) -> int | None:
        if self._entries:
            return self._offset + len(self._entries) - 1
        if self._snapshot is not None:
            return self._snapshot.meta.index
        return None

    def maybe_term(self, index: int) -> int | None:
        if index < self._offset:
            if self._snapshot is not None and self._snapshot.meta.index == index:
                return self._snapshot.meta.term
            return None
        last = self.maybe_last_index()
        if last is None or index > last:
            return None
        return self._entries[index - self._offset].term

    def next_entries(self) -> list[Entry]:
        return self._entries[self._in_progress - self._offset :]

    def next_snapshot(self) -> Snapshot | None:
        if self._snapshot_in_progress:
            return None
        return self._snapshot

    def accept_in_progress(self) -> None:
        self._in_progress = self._offset + len(self._entries)
        self._snapshot_in_progress = self._snapshot is not None

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to (index, term) are persisted; ignored if since overwritten."""
        if self.maybe_term(index) != term or index < self._offset:
            return
        del self._entries[: index + 1 - self._offset]
        self._offset = index + 1
        self._in_progress = max(self._in_progress, self._offset)

    def stable_snap_to(self, index: int) -> None:
        if self._snapshot is not None and self._snapshot.meta.index == index:
            self._snapshot = None
            self._snapshot_in_progress = False

    def restore(self, snapshot: Snapshot) -> None:
        self._offset = snapshot.meta.index + 1
        self._in_progress = self._offset
        self._entries = []
        self._snapshot = snapshot
        self._snapshot_in_progress = False

    def truncate_and_append(self, entries: list[Entry]) -> None:
        after = entries[0].index
        if after == self._offset + len(self._entries):
            self._entries.extend(entries)
        elif after <= self._offset:
            self._offset = after
            self._entries = list(entries)
        else:
            del self._entries[after - self._offset :]
            self._entries.extend(entries)
        self._in_progress = min(self._in_progress, after)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self._entries[lo - self._offset : hi - self._offset]


@attrs.define
class RaftLog:
    """Storage plus unstable tail, with the commit, applying and applied indexes."""

    _storage: RaftStorage
    _unstable: Unstable
    committed: int
    applied: int
    applying: int
    """Highest index handed to the shell for applying (>= applied)."""

    @classmethod
    def open(cls, storage: RaftStorage, committed: int, applied: int) -> RaftLog:
        unstable = Unstable(storage.last_index() + 1)
        return cls(storage, unstable, committed, applied, applied)

    # -- indexes and terms --------------------------------------------------------------

    def first_index(self) -> int:
        first = self._unstable.maybe_first_index()
        return first if first is not None else self._storage.first_index()

    def last_index(self) -> int:
        last = self._unstable.maybe_last_index()
        return last if last is not None else self._storage.last_index()

    def stable_last_index(self) -> int:
        """Last index known persisted (the leader counts only these as its own copy)."""
        if self._unstable.has_entries:
            return self._unstable.offset - 1
        return self.last_index()

    def term(self, index: int) -> int | None:
        """Term at `index`, or None when compacted away or beyond the log."""
        if index < self.first_index() - 1 or index > self.last_index():
            return None
        term = self._unstable.maybe_term(index)
        if term is not None:
            return term
        try:
            return self._storage.term(index)
        except (LogCompacted, LogUnavailable):
            return None

    def last_term(self) -> int:
        term = self.term(self.last_index())
        if term is None:
            raise InvariantViolated(f"term of last index {self.last_index()} unknown")
        return term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """§5.4.1: a candidate's log at least as up to date as ours."""
        our_term = self.last_term()
        return term > our_term or (term == our_term and last_index >= self.last_index())

    # -- reading entries ----------------------------------------------------------------

    def slice(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries [lo, hi), size-limited (at least one). Raises LogCompacted below the
        first index."""
        if lo < self.first_index():
            raise LogCompacted(f"entry {lo} compacted (first index {self.first_index()})")
        hi = min(hi, self.last_index() + 1)
        if lo >= hi:
            return []
        offset = self._unstable.offset
        entries: list[Entry] = []
        if lo < offset:
            stored_hi = min(hi, offset)
            entries = self._storage.entries(lo, stored_hi, max_size)
            if len(entries) < stored_hi - lo:
                return entries
        if hi > offset:
            entries.extend(self._unstable.slice(max(lo, offset), hi))
        return limit_size(entries, max_size)

    def snapshot(self) -> Snapshot:
        pending = self._unstable.snapshot
        return pending if pending is not None else self._storage.snapshot()

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest index <= `index` whose term is <= `term` (fast log backtracking), with
        that term; (index, 0) if the term there is unknown."""
        while index > 0:
            our = self.term(index)
            if our is None:
                return index, 0
            if our <= term:
                return index, our
            index -= 1
        return 0, 0

    # -- changing the log ---------------------------------------------------------------

    def append(self, entries: list[Entry]) -> int:
        if not entries:
            return self.last_index()
        if entries[0].index - 1 < self.committed:
            raise InvariantViolated(
                f"append at {entries[0].index} would overwrite committed {self.committed}"
            )
        self._unstable.truncate_and_append(entries)
        return self.last_index()

    def maybe_append(
        self, index: int, log_term: int, committed: int, entries: tuple[Entry, ...]
    ) -> int | None:
        """Follower side of AppendEntries (§5.3): None if (index, log_term) does not match;
        otherwise append from the first conflicting entry only (a stale or duplicated
        message never truncates entries it does not contradict) and return the last index
        the message vouches for."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = 0
        for entry in entries:
            if not self.match_term(entry.index, entry.term):
                conflict = entry.index
                break
        if conflict:
            if conflict <= self.committed:
                raise InvariantViolated(
                    f"entry {conflict} conflicts with committed {self.committed}"
                )
            self.append(list(entries[conflict - index - 1 :]))
        self.commit_to(min(committed, last_new))
        return last_new

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise InvariantViolated(f"commit {index} beyond last index {self.last_index()}")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit `index` only if its entry is from `term` (the Figure 8 rule, §5.4.2)."""
        if index > self.committed and self.term(index) == term:
            self.commit_to(index)
            return True
        return False

    def restore(self, snapshot: Snapshot) -> None:
        self.committed = snapshot.meta.index
        self._unstable.restore(snapshot)

    # -- Ready bookkeeping --------------------------------------------------------------

    def next_unstable_entries(self) -> list[Entry]:
        return self._unstable.next_entries()

    def next_unstable_snapshot(self) -> Snapshot | None:
        return self._unstable.next_snapshot()

    def has_pending_snapshot(self) -> bool:
        return self._unstable.snapshot is not None

    def next_committed_entries(self, max_size: int) -> list[Entry]:
        if self.has_pending_snapshot() and self._unstable.next_snapshot() is not None:
            return []
        lo = max(self.applying + 1, self.first_index())
        hi = min(self.committed, self.last_index()) + 1
        if lo >= hi:
            return []
        return self.slice(lo, hi, max_size)

    def has_next_committed_entries(self) -> bool:
        if self.has_pending_snapshot() and self._unstable.next_snapshot() is not None:
            return False
        return min(self.committed, self.last_index()) > max(self.applying, self.first_index() - 1)

    def accept_ready(self, snapshot: Snapshot | None, committed: list[Entry]) -> None:
        self._unstable.accept_in_progress()
        if snapshot is not None:
            self.applying = max(self.applying, snapshot.meta.index)
        if committed:
            self.applying = max(self.applying, committed[-1].index)

    def stable_to(self, index: int, term: int) -> None:
        self._unstable.stable_to(index, term)

    def stable_snap_to(self, index: int) -> None:
        self._unstable.stable_snap_to(index)

    def applied_to(self, index: int) -> None:
        if index > self.applied:
            self.applied = index
            self.applying = max(self.applying, index)
