"""One contract suite for every NodeStorage: the in-memory twin and SQLite (raft.db)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dkron_trio.raft.errors import InvalidRequest, LogCompacted, LogUnavailable
from dkron_trio.raft.node_storage import MemoryNodeStorage, NodeStorage
from dkron_trio.raft.sqlite_storage import SqliteRaftStorage
from dkron_trio.raft.types import (
    Compaction,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Ready,
    Snapshot,
    SnapshotMeta,
)

CONF = ConfState(frozenset({1, 2, 3}))
Factory = Callable[[ConfState | None], NodeStorage]


@pytest.fixture(params=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    opened: list[SqliteRaftStorage] = []

    def factory(conf: ConfState | None) -> NodeStorage:
        if request.param == "memory":
            return MemoryNodeStorage(conf)
        storage = SqliteRaftStorage(tmp_path / f"raft{len(opened)}.db", conf)
        opened.append(storage)
        return storage

    yield factory
    for storage in opened:
        storage.close()


def save(storage: NodeStorage, ready: Ready) -> None:
    storage.persist(ready)
    storage.install(ready)


def append(storage: NodeStorage, *entries: Entry) -> None:
    save(storage, Ready(entries=entries, must_sync=True))


def test_bootstrapped_storage_starts_from_the_membership_snapshot(make: Factory) -> None:
    storage = make(CONF)
    hard_state, conf = storage.initial_state()
    assert conf == CONF and hard_state == HardState(term=1, commit=1)
    assert storage.snapshot().meta == SnapshotMeta(1, 1, CONF)
    assert (storage.first_index(), storage.last_index(), storage.term(1)) == (2, 1, 1)


def test_joining_storage_is_empty(make: Factory) -> None:
    storage = make(None)
    assert storage.initial_state() == (HardState(), ConfState())
    assert (storage.first_index(), storage.last_index(), storage.term(0)) == (1, 0, 0)


def test_append_replaces_the_tail_and_rejects_gaps(make: Factory) -> None:
    storage = make(CONF)
    append(storage, Entry(1, 2), Entry(1, 3, data=b"a"), Entry(1, 4))
    append(storage, Entry(2, 3, EntryType.CONF_CHANGE, b"b"))
    assert storage.entries(2, 4) == [Entry(1, 2), Entry(2, 3, EntryType.CONF_CHANGE, b"b")]
    assert storage.last_index() == 3
    with pytest.raises(InvalidRequest, match="gap"):
        append(storage, Entry(2, 9))
    with pytest.raises(InvalidRequest, match="contiguous"):
        append(storage, Entry(2, 4), Entry(2, 6))
    assert storage.last_index() == 3


def test_reads_outside_the_log_raise(make: Factory) -> None:
    storage = make(CONF)
    append(storage, *(Entry(1, i, data=b"x" * 10) for i in range(2, 6)))
    assert len(storage.entries(2, 6, max_size=25)) == 2
    assert len(storage.entries(2, 6, max_size=1)) == 1
    assert storage.entries(3, 3) == []
    with pytest.raises(LogCompacted):
        storage.entries(1, 3)
    with pytest.raises(LogUnavailable):
        storage.entries(2, 7)
    with pytest.raises(LogCompacted):
        storage.term(0)
    with pytest.raises(LogUnavailable):
        storage.term(6)


def test_compaction_keeps_a_trailing_range_and_the_snapshot(make: Factory) -> None:
    storage = make(CONF)
    append(storage, *(Entry(1 + i // 5, i) for i in range(2, 11)))
    snap = Snapshot(SnapshotMeta(8, 2, CONF), b"state")
    save(storage, Ready(compaction=Compaction(snap, 5)))
    assert (storage.first_index(), storage.term(5), storage.snapshot()) == (6, 2, snap)
    with pytest.raises(LogCompacted):
        storage.entries(5, 7)
    with pytest.raises(LogCompacted):
        storage.term(4)
    with pytest.raises(InvalidRequest, match="beyond last index"):
        save(storage, Ready(compaction=Compaction(snap, 20)))
    with pytest.raises(InvalidRequest, match="older"):
        save(storage, Ready(compaction=Compaction(Snapshot(SnapshotMeta(7, 2, CONF)), 5)))
    save(storage, Ready(compaction=Compaction(snap, 3)))
    assert storage.first_index() == 6


def test_received_snapshot_replaces_the_log(make: Factory) -> None:
    storage = make(None)
    append(storage, Entry(1, 1), Entry(1, 2))
    snap = Snapshot(SnapshotMeta(50, 3, CONF), b"image")
    save(storage, Ready(snapshot=snap, hard_state=HardState(3, 0, 50), must_sync=True))
    assert storage.snapshot() == snap
    assert (storage.first_index(), storage.last_index(), storage.term(50)) == (51, 50, 3)
    assert storage.initial_state() == (HardState(3, 0, 50), CONF)
    with pytest.raises(InvalidRequest, match="not newer"):
        save(storage, Ready(snapshot=Snapshot(SnapshotMeta(40, 3, CONF)), must_sync=True))


def test_one_ready_applies_snapshot_entries_hard_state_and_compaction_in_order(
    make: Factory,
) -> None:
    storage = make(None)
    snap = Snapshot(SnapshotMeta(10, 2, CONF), b"image")
    entries = tuple(Entry(3, i) for i in range(11, 16))
    local = Snapshot(SnapshotMeta(14, 3, CONF), b"local")
    save(
        storage,
        Ready(
            snapshot=snap,
            entries=entries,
            hard_state=HardState(3, 2, 14),
            compaction=Compaction(local, 12),
            must_sync=True,
        ),
    )
    assert (storage.first_index(), storage.last_index(), storage.term(12)) == (13, 15, 3)
    assert storage.snapshot() == local
    assert storage.initial_state()[0] == HardState(3, 2, 14)


def test_entries_at_or_below_the_compaction_point_are_skipped(make: Factory) -> None:
    storage = make(CONF)
    append(storage, Entry(1, 2), Entry(2, 3))
    append(storage, Entry(1, 1), Entry(1, 2), Entry(2, 3), Entry(2, 4))
    assert [e.index for e in storage.entries(2, 5)] == [2, 3, 4]
