"""What a RaftNode needs from its storage: the core's read-only `RaftStorage` plus a
persist step split in two halves, and the in-memory twin used by shell tests.

The split exists because the core reads storage from the event-loop thread while the
blocking write runs on a worker thread: `persist(ready)` only writes durably (it may block
and must not change what the core reads), `install(ready)` then updates the in-memory view
the core reads, back on the event-loop thread, so no read ever races a write.
"""

from __future__ import annotations

from typing import Protocol

from dkron_trio.raft.storage import MemoryRaftStorage, RaftStorage
from dkron_trio.raft.types import Ready


class NodeStorage(RaftStorage, Protocol):
    def persist(self, ready: Ready) -> None:
        """Make the Ready's snapshot, entries, hard state and compaction durable, all or
        nothing (called on a worker thread; blocking allowed; the view stays unchanged)."""
        ...

    def install(self, ready: Ready) -> None:
        """Show what `persist(ready)` just stored to the core's reads (event-loop thread)."""
        ...

    def stage_snapshot(self, index: int, data: bytes) -> None:
        """Store the data of a snapshot about to be taken at `index` ahead of the Ready
        that records it (on a worker thread of its own, while `persist` may run), so that
        the Ready's write stays short."""
        ...


class MemoryNodeStorage(MemoryRaftStorage):
    """MemoryRaftStorage as a NodeStorage: nothing to make durable, `install` saves."""

    def persist(self, ready: Ready) -> None:
        del ready

    def install(self, ready: Ready) -> None:
        self.save(ready)

    def stage_snapshot(self, index: int, data: bytes) -> None:
        del index, data


def needs_persist(ready: Ready) -> bool:
    """Whether the Ready carries anything for storage (else the thread hop is skipped)."""
    return bool(
        ready.entries
        or ready.hard_state is not None
        or ready.snapshot is not None
        or ready.compaction is not None
    )
