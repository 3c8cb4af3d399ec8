"""raft.db durability: reopen keeps everything; damage is cut off only where it is safe."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dkron_trio.raft.errors import InvalidRequest
from dkron_trio.raft.sqlite_storage import (
    CorruptRaftLog,
    SqliteRaftStorage,
    TailRepair,
    entry_crc,
)
from dkron_trio.raft.types import (
    Compaction,
    ConfState,
    Entry,
    HardState,
    Ready,
    Snapshot,
    SnapshotMeta,
)

CONF = ConfState(frozenset({1, 2, 3}))


def filled(path: Path, *, last: int = 10, commit: int = 6) -> None:
    """A raft.db with entries 2..last (term 2) and the given persisted commit index."""
    storage = SqliteRaftStorage(path, CONF)
    entries = tuple(Entry(2, i, data=f"cmd{i}".encode()) for i in range(2, last + 1))
    storage.save(Ready(entries=entries, hard_state=HardState(2, 1, commit), must_sync=True))
    storage.close()


def tamper(path: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, args)
    conn.close()


def test_reopen_keeps_log_hard_state_snapshot_and_compaction_point(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    storage = SqliteRaftStorage(path, CONF)
    entries = tuple(Entry(2, i, data=bytes([i])) for i in range(2, 21))
    snap = Snapshot(SnapshotMeta(15, 2, CONF), b"image")
    storage.save(
        Ready(
            entries=entries,
            hard_state=HardState(2, 3, 18),
            compaction=Compaction(snap, 12),
            must_sync=True,
        )
    )
    storage.save(Ready(hard_state=HardState(2, 3, 19)))
    storage.close()
    reopened = SqliteRaftStorage(path, ConfState(frozenset({9})))
    assert reopened.initial_state() == (HardState(2, 3, 19), CONF)
    assert reopened.snapshot() == snap
    assert (reopened.first_index(), reopened.last_index(), reopened.term(12)) == (13, 20, 2)
    assert reopened.entries(13, 21) == list(entries[11:])
    assert reopened.repair is None
    reopened.close()


def test_a_refused_ready_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    storage = SqliteRaftStorage(path, CONF)
    bad = Ready(
        entries=(Entry(2, 2), Entry(2, 3)),
        hard_state=HardState(2, 0, 3),
        compaction=Compaction(Snapshot(SnapshotMeta(9, 2, CONF)), 2),
        must_sync=True,
    )
    with pytest.raises(InvalidRequest, match="beyond last index"):
        storage.save(bad)
    storage.close()
    reopened = SqliteRaftStorage(path)
    assert reopened.last_index() == 1 and reopened.initial_state()[0] == HardState(1, 0, 1)
    reopened.close()


def test_crc_mismatch_above_commit_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    filled(path, last=10, commit=6)
    tamper(path, "UPDATE entries SET data = ? WHERE idx = 8", b"flipped")
    storage = SqliteRaftStorage(path)
    assert storage.repair == TailRepair(8, 10, 6, "CRC mismatch")
    assert storage.last_index() == 7
    storage.append([Entry(3, 8, data=b"new")])
    storage.close()
    again = SqliteRaftStorage(path)
    assert again.repair is None and again.entries(8, 9) == [Entry(3, 8, data=b"new")]
    again.close()


def test_gap_above_commit_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    filled(path, last=10, commit=6)
    tamper(path, "DELETE FROM entries WHERE idx = 9")
    storage = SqliteRaftStorage(path)
    assert storage.repair is not None and storage.repair.first == 9
    assert "missing" in storage.repair.reason and storage.last_index() == 8
    storage.close()


def test_crc_mismatch_at_or_below_commit_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    filled(path, last=10, commit=6)
    tamper(path, "UPDATE entries SET crc = crc + 1 WHERE idx = 6")
    with pytest.raises(CorruptRaftLog, match=r"entry 6 is corrupt \(CRC mismatch; .*commit") as e:
        SqliteRaftStorage(path)
    assert e.value.index == 6
    # Nothing was cut: the file still holds every entry for an operator to inspect.
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 9
    conn.close()


def test_terms_going_backwards_below_commit_refuse_to_start(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    filled(path, last=10, commit=6)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "UPDATE entries SET term = 1, crc = ? WHERE idx = 4",
            (entry_crc(Entry(1, 4, data=b"cmd4")),),
        )
    conn.close()
    with pytest.raises(CorruptRaftLog, match=r"entry 4 .*term 1 below"):
        SqliteRaftStorage(path)


def test_missing_committed_entries_refuse_to_start(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    filled(path, last=10, commit=10)
    tamper(path, "DELETE FROM entries WHERE idx >= 9")
    with pytest.raises(CorruptRaftLog, match=r"entry 9 .*missing"):
        SqliteRaftStorage(path)


def test_damaged_metadata_and_unknown_schema_refuse_to_start(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    filled(path)
    tamper(path, "UPDATE meta SET value = ? WHERE key = 'hard_state'", b"\x00")
    with pytest.raises(CorruptRaftLog, match=r"metadata is corrupt .*hard_state"):
        SqliteRaftStorage(path)
    other = tmp_path / "other.db"
    filled(other)
    tamper(other, "PRAGMA user_version = 7")
    with pytest.raises(CorruptRaftLog, match="schema version 7"):
        SqliteRaftStorage(other)


def test_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    filled(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_file_that_is_not_a_raft_db_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(CorruptRaftLog, match=r"metadata is corrupt \(unreadable"):
        SqliteRaftStorage(path)


def test_each_fsynced_transaction_reports_its_duration_once(tmp_path: Path) -> None:
    ticks = iter([1.0, 1.25, 3.0, 3.125])
    seen: list[float] = []
    storage = SqliteRaftStorage(
        tmp_path / "raft.db", CONF, on_durable_write=seen.append, timer=lambda: next(ticks)
    )
    storage.save(Ready(entries=(Entry(2, 2),), hard_state=HardState(2, 1, 1), must_sync=True))
    storage.save(Ready(hard_state=HardState(2, 1, 2)))  # commit index only: not durable
    storage.set_snapshot(Snapshot(SnapshotMeta(2, 2, CONF), b"image"))  # durable, no must_sync
    storage.close()
    assert seen == [0.25, 0.125]
