"""raft.db keeps a snapshot's data in a file of its own: staged ahead of the compaction that
records it, checked on open, and removed once a newer one is recorded. The rows a compaction
leaves below the log's start go a few per transaction."""

from __future__ import annotations

import os
import sqlite3
import zlib
from pathlib import Path

import pytest

from dkron_trio.raft import sqlite_storage
from dkron_trio.raft.sqlite_storage import CorruptRaftLog, SqliteRaftStorage
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


def logged(path: Path, last: int = 30, commit: int | None = None) -> SqliteRaftStorage:
    """raft.db with entries 2..last (term 2), committed up to `commit` (default: all)."""
    storage = SqliteRaftStorage(path, CONF)
    entries = tuple(Entry(2, i, data=bytes([i])) for i in range(2, last + 1))
    hard_state = HardState(2, 1, last if commit is None else commit)
    storage.save(Ready(entries=entries, hard_state=hard_state, must_sync=True))
    return storage


def snap(index: int, data: bytes) -> Snapshot:
    return Snapshot(SnapshotMeta(index, 2, CONF), data)


def compact(storage: SqliteRaftStorage, snapshot: Snapshot) -> None:
    storage.save(Ready(compaction=Compaction(snapshot, snapshot.meta.index)))


def compacted_at_15(folder: Path) -> Path:
    """A closed raft.db in `folder`, compacted at 15 with the image b"image-15"."""
    path = folder / "raft.db"
    storage = logged(path)
    compact(storage, snap(15, b"image-15"))
    storage.close()
    return path


def snapshot_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".snapshot-" in p.name)


def meta_keys(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    keys = {row[0] for row in conn.execute("SELECT key FROM meta")}
    conn.close()
    return keys


def test_the_data_is_in_a_file_beside_the_log_and_comes_back_on_open(tmp_path: Path) -> None:
    path = compacted_at_15(tmp_path)
    assert (tmp_path / "raft.db.snapshot-15").read_bytes() == b"image-15"
    assert "snapshot_data" not in meta_keys(path)
    reopened = SqliteRaftStorage(path)
    assert reopened.snapshot() == snap(15, b"image-15")
    assert reopened.first_index() == 16
    reopened.close()


def test_a_staged_snapshot_is_not_written_again_by_its_compaction(tmp_path: Path) -> None:
    storage = logged(tmp_path / "raft.db")
    storage.stage_snapshot(15, b"image-15")
    staged = os.stat(tmp_path / "raft.db.snapshot-15").st_ino
    compact(storage, snap(15, b"image-15"))
    assert os.stat(tmp_path / "raft.db.snapshot-15").st_ino == staged
    storage.close()


def test_a_stage_that_differs_from_the_recorded_data_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    storage = logged(path)
    storage.stage_snapshot(15, b"other")
    compact(storage, snap(15, b"image-15"))
    storage.close()
    assert (tmp_path / "raft.db.snapshot-15").read_bytes() == b"image-15"


def test_older_files_go_once_a_newer_one_is_recorded_and_unrecorded_ones_on_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "raft.db"
    storage = logged(path)
    compact(storage, snap(10, b"image-10"))
    storage.stage_snapshot(20, b"image-20")
    storage.stage_snapshot(28, b"image-28")  # for a compaction still to come: kept
    compact(storage, snap(20, b"image-20"))
    assert snapshot_files(tmp_path) == ["raft.db.snapshot-20", "raft.db.snapshot-28"]
    storage.close()
    (tmp_path / "raft.db.snapshot-25.tmp").write_bytes(b"torn")
    SqliteRaftStorage(path).close()
    assert snapshot_files(tmp_path) == ["raft.db.snapshot-20"]


def test_a_received_snapshot_is_written_to_its_file(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    storage = logged(path, last=5)
    storage.apply_snapshot(snap(40, b"from the leader"))
    storage.close()
    reopened = SqliteRaftStorage(path)
    assert reopened.snapshot() == snap(40, b"from the leader")
    assert (reopened.first_index(), reopened.last_index()) == (41, 40)
    reopened.close()
    assert snapshot_files(tmp_path) == ["raft.db.snapshot-40"]


def test_a_missing_or_damaged_file_refuses_to_start(tmp_path: Path) -> None:
    path = compacted_at_15(tmp_path)
    data_file = tmp_path / "raft.db.snapshot-15"
    data_file.write_bytes(b"image-16")
    with pytest.raises(CorruptRaftLog, match="snapshot-15: size or CRC mismatch"):
        SqliteRaftStorage(path)
    data_file.unlink()
    with pytest.raises(CorruptRaftLog, match="snapshot-15 is missing"):
        SqliteRaftStorage(path)


def test_a_version_1_log_with_the_data_inline_opens_and_moves_it_to_a_file(
    tmp_path: Path,
) -> None:
    path = compacted_at_15(tmp_path)
    (tmp_path / "raft.db.snapshot-15").unlink()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("DELETE FROM meta WHERE key = 'snapshot_file'")
        crc = zlib.crc32(b"image-15", zlib.crc32(b"snapshot_data"))
        conn.execute(
            "INSERT INTO meta (key, value, crc) VALUES ('snapshot_data', ?, ?)", (b"image-15", crc)
        )
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    reopened = SqliteRaftStorage(path)
    assert reopened.snapshot() == snap(15, b"image-15")
    compact(reopened, snap(20, b"image-20"))
    reopened.close()
    assert "snapshot_data" not in meta_keys(path)
    assert snapshot_files(tmp_path) == ["raft.db.snapshot-20"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    conn.close()


def stored_rows(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    rows = [row[0] for row in conn.execute("SELECT idx FROM entries ORDER BY idx")]
    conn.close()
    return rows


def test_rows_below_the_log_start_are_purged_a_batch_per_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_storage, "PURGE_BATCH", 4)
    path = tmp_path / "raft.db"
    storage = logged(path, last=20)
    compact(storage, snap(12, b"image-12"))
    assert stored_rows(path) == list(range(6, 21))  # rows 2-5 went with the compaction
    storage.close()
    reopened = SqliteRaftStorage(path)  # rows below the start are never read
    assert (reopened.first_index(), reopened.last_index()) == (13, 20)
    commit = 20
    while stored_rows(path)[0] <= 12:
        commit += 1
        reopened.save(Ready(entries=(Entry(2, commit),), hard_state=HardState(2, 1, commit)))
    assert stored_rows(path) == list(range(13, commit + 1))
    assert commit == 22  # rows 6-9, then 10-12
    assert reopened.entries(13, commit + 1)[0].index == 13
    reopened.close()


def test_a_received_snapshot_drops_the_rows_above_it_at_once(tmp_path: Path) -> None:
    path = tmp_path / "raft.db"
    storage = logged(path, last=30, commit=8)
    storage.apply_snapshot(snap(10, b"from the leader"))
    assert all(idx <= 10 for idx in stored_rows(path))
    storage.close()
    reopened = SqliteRaftStorage(path)
    assert (reopened.first_index(), reopened.last_index()) == (11, 10)
    reopened.close()
