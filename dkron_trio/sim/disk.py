"""A simulated disk for one Raft node: writes land in a cache, fsync makes them durable, and a
crash keeps only what was synced plus a random prefix of the rest, the last write possibly torn.

The core reads the cached view (`storage`), as a real node reads through the page cache. A
restart gets a fresh storage built from what survived, so any durability promise the core
relies on without asking for an fsync (`Ready.must_sync`) shows up as a broken invariant.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import attrs

from dkron_trio.raft.storage import MemoryRaftStorage
from dkron_trio.raft.types import Compaction, ConfState, Entry, HardState, Ready, Snapshot
from dkron_trio.sim.network import SimRng


@attrs.frozen
class _Append:
    entries: tuple[Entry, ...]


@attrs.frozen
class _SetHardState:
    hard_state: HardState


@attrs.frozen
class _InstallSnapshot:
    snapshot: Snapshot


@attrs.frozen
class _Compact:
    compaction: Compaction


_Write = _Append | _SetHardState | _InstallSnapshot | _Compact


def _apply(storage: MemoryRaftStorage, write: _Write) -> None:
    match write:
        case _Append(entries):
            storage.append(entries)
        case _SetHardState(hard_state):
            storage.set_hard_state(hard_state)
        case _InstallSnapshot(snapshot):
            storage.apply_snapshot(snapshot)
        case _Compact(compaction):
            storage.set_snapshot(compaction.snapshot)
            storage.compact(compaction.compact_index)


@attrs.frozen
class CrashLoss:
    """What a crash threw away: unsynced writes lost whole, and whether the last kept one was
    torn (an append cut short)."""

    lost_writes: int
    torn: bool


@attrs.define(init=False)
class SimDisk:
    _durable: MemoryRaftStorage
    _cache: MemoryRaftStorage
    _unsynced: list[_Write]

    def __init__(self, conf_state: ConfState) -> None:
        durable = MemoryRaftStorage(conf_state)
        self.__attrs_init__(durable=durable, cache=copy.deepcopy(durable), unsynced=[])

    @property
    def storage(self) -> MemoryRaftStorage:
        """The view the running core reads: every write, synced or not."""
        return self._cache

    def unsynced_writes(self) -> int:
        return len(self._unsynced)

    def persist(self, ready: Ready) -> None:
        """Write a Ready's durable parts in the contract's order (see raft.types.Ready)."""
        writes: list[_Write] = []
        if ready.snapshot is not None:
            writes.append(_InstallSnapshot(ready.snapshot))
        if ready.entries:
            writes.append(_Append(ready.entries))
        if ready.hard_state is not None:
            writes.append(_SetHardState(ready.hard_state))
        if ready.compaction is not None:
            writes.append(_Compact(ready.compaction))
        for write in writes:
            _apply(self._cache, write)
        self._unsynced.extend(writes)

    def sync(self) -> None:
        for write in self._unsynced:
            _apply(self._durable, write)
        self._unsynced.clear()

    def crash(self, rng: SimRng) -> CrashLoss:
        """Lose power: keep a random prefix of the unsynced writes, maybe tearing the last."""
        pending = self._unsynced
        keep = rng.randrange(0, len(pending) + 1)
        torn = False
        for i, write in enumerate(pending[:keep]):
            kept = write
            if i == keep - 1 and isinstance(write, _Append) and len(write.entries) > 1:
                cut = rng.randrange(1, len(write.entries) + 1)
                torn = cut < len(write.entries)
                kept = _Append(write.entries[:cut])
            _apply(self._durable, kept)
        loss = CrashLoss(lost_writes=len(pending) - keep, torn=torn)
        self._unsynced = []
        self._cache = copy.deepcopy(self._durable)
        return loss

    def durable_entries(self) -> Sequence[Entry]:
        """Entries that would survive a crash now (for tests of the disk itself)."""
        s = self._durable
        return s.entries(s.first_index(), s.last_index() + 1)
