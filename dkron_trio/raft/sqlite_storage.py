"""SqliteRaftStorage: the durable Raft log, hard state and snapshot metadata (``raft.db``).

SQLite in WAL mode with ``synchronous=FULL``; one transaction per Ready (snapshot, entries,
hard state and compaction together), so every proposal batched into a Ready shares one
fsync (group commit). A Ready that only moves the commit index is written without an fsync:
a lost commit index is learnt again from the leader, and the next synced commit covers it.

The snapshot's data (the state machine's image, tens of megabytes for a large store)
lives in a file beside raft.db, ``raft.db.snapshot-<index>``, named by its metadata row
with its size and CRC32. Written inside the Ready's transaction, the image went through the
WAL and again into the database, twice its size under the log's write lock: every node
compacts at about the same index, so a compaction stalled the whole cluster's log for
seconds. A snapshot taken here is staged ahead (`stage_snapshot`, on a thread of its own,
while the log goes on), and its Ready then records only the metadata; a snapshot received
from the leader is written in its Ready, before the transaction. Files no metadata row
names (an older snapshot, a stage whose Ready never came) are removed once a newer one is
recorded, and when the file is opened.

The rows a compaction (or a received snapshot) leaves below the log's start are deleted a
few at a time (`PURGE_BATCH` per transaction), not in the compaction's own: deleting a
snapshot interval's worth of rows (tens of megabytes) took 200 ms and more, during which
the node persisted nothing. Rows below the start are never read.

Each entry row carries a CRC32 of (index, term, type, data), checked when the log is
loaded on open. The whole log since the last compaction is then held in memory, so the
core's reads (`term`, `entries`) never touch the disk; compaction bounds its size.

Writes come in two halves (see `node_storage.NodeStorage`): `persist(ready)` validates and
writes in one transaction without touching the in-memory view, `install(ready)` updates the
view. `save(ready)` and the single-operation methods do both, for synchronous callers.

A damaged log found on open (a CRC mismatch, a gap, or terms going backwards) is cut off at
the first bad entry if that entry lies above the persisted commit index, and the node
starts; at or below it the node refuses to start. The reasoning: SQLite's own WAL checksums
already roll back a transaction torn by a crash, so a bad row means the disk lost or
damaged data after the fact, most likely the latest writes (a disk whose cache lied about
fsync). Entries above the persisted commit index are the ones this node had not yet seen
committed: the most recent batch of them was never acknowledged (messages are sent only
after the fsync), and the cluster does not depend on this node alone for any of them
unless it was part of a bare quorum that then also lost its other copies. Dropping them
makes this node behave like one that crashed just before writing them: it fetches them
again from the leader. An entry at or below the commit index was committed (acknowledged to
a client): cutting it would silently lose an acknowledged write, so the node stops and says
which index is bad; the operator restores the node from its peers (empty data dir, rejoin).
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import attrs

from dkron_trio.durable import fsync_dir, write_durably
from dkron_trio.logs import get_logger
from dkron_trio.raft.codec import (
    CodecError,
    decode_hard_state,
    decode_snapshot_meta,
    encode_hard_state,
    encode_snapshot_meta,
)
from dkron_trio.raft.errors import InvalidRequest, RaftError
from dkron_trio.raft.storage import LogView, bootstrap_snapshot
from dkron_trio.raft.types import (
    EMPTY_SNAPSHOT,
    Compaction,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Ready,
    Snapshot,
)

log = get_logger(__name__)

SCHEMA_VERSION = 2
"""2: the snapshot's data in a file of its own (`_SNAPSHOT_FILE`). A version 1 file, with the
data inline (`_SNAPSHOT_DATA`), is read as it is and moves to a file at its next snapshot."""
_SCHEMA = (
    "CREATE TABLE entries (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, "
    "type INTEGER NOT NULL, data BLOB NOT NULL, crc INTEGER NOT NULL)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL, crc INTEGER NOT NULL)",
)
_HARD_STATE = "hard_state"
_SNAPSHOT_META = "snapshot_meta"
_SNAPSHOT_DATA = "snapshot_data"
_SNAPSHOT_FILE = "snapshot_file"
_SNAPSHOT_FILE_FORMAT = struct.Struct(">QQI")
"""(index, size, CRC32) of the snapshot's data file; size 0 means no file (empty data)."""
_LOG_START = "log_start"
"""(index, term) of the compaction point: the entry just before the first one held."""
PURGE_BATCH = 256
"""Rows below the log's start deleted per transaction (see the module docstring)."""
_HEADER = struct.Struct(">QQB")
_LOG_START_FORMAT = struct.Struct(">QQ")


class CorruptRaftLog(RaftError):
    """raft.db holds damage that cannot be repaired without risking an acknowledged write;
    `index` is the first bad entry (0 for damaged metadata)."""

    def __init__(self, path: str, index: int, reason: str) -> None:
        where = f"entry {index}" if index else "metadata"
        super().__init__(f"{path}: {where} is corrupt ({reason}); refusing to start")
        self.index = index
        self.reason = reason


@attrs.frozen
class TailRepair:
    """What opening the log cut off: entries [first, last], never acknowledged as committed
    (above the persisted commit index `commit`), because entry `first` was bad."""

    first: int
    last: int
    commit: int
    reason: str


def entry_crc(entry: Entry) -> int:
    header = _HEADER.pack(entry.index, entry.term, entry.type.value)
    return zlib.crc32(entry.data, zlib.crc32(header))


def _meta_crc(key: str, value: bytes) -> int:
    return zlib.crc32(value, zlib.crc32(key.encode()))


@attrs.define(eq=False)
class _Loaded:
    hard_state: HardState
    snapshot: Snapshot
    offset: int
    offset_term: int
    entries: list[Entry]
    repair: TailRepair | None


DurableWriteSink = Callable[[float], None]
"""Told the seconds one fsync'd raft.db transaction took."""


@attrs.define(init=False, eq=False)
class SqliteRaftStorage(LogView):
    """RaftStorage on SQLite. Not thread-safe by itself: the node calls `persist` on one
    worker thread at a time (a CapacityLimiter of 1) and everything else from the event loop,
    never concurrently with an `install`."""

    _path: str
    _conn: sqlite3.Connection
    _hard_state: HardState
    _snapshot: Snapshot
    _offset: int
    _offset_term: int
    _entries: list[Entry]
    _repair: TailRepair | None
    _on_durable_write: DurableWriteSink | None
    _timer: Callable[[], float]
    _staged: dict[int, tuple[int, int]]
    """Snapshot files written ahead by `stage_snapshot`: index -> (size, CRC32)."""
    _staged_lock: threading.Lock
    _purged_to: int
    """No row at or below this index is left (0 when not known yet): persist-thread
    bookkeeping, not part of the core's view."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        conf_state: ConfState | None = None,
        *,
        on_durable_write: DurableWriteSink | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        """Open (or create) raft.db at `path`. A new file is bootstrapped like
        MemoryRaftStorage: with a non-empty `conf_state` as an initial member, without as a
        node waiting to join. An existing file keeps its state (`conf_state` is ignored).
        Raises CorruptRaftLog when the file cannot be trusted (see the module docstring).

        `on_durable_write` is told the seconds (by `timer`) each fsync'd transaction took,
        from BEGIN to the end of COMMIT: the group-commit latency (metrics). It is called on
        the thread that persists, so it must be thread-safe and must not raise."""
        self._path = os.fspath(path)
        self._on_durable_write = on_durable_write
        self._timer = timer
        self._staged = {}
        self._staged_lock = threading.Lock()
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                self._create(conn, conf_state)
            elif version == 1:
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise CorruptRaftLog(
                    self._path, 0, f"schema version {version}, this build reads {SCHEMA_VERSION}"
                )
            loaded = self._load(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise CorruptRaftLog(self._path, 0, f"unreadable: {exc}") from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._hard_state = loaded.hard_state
        self._snapshot = loaded.snapshot
        self._offset = loaded.offset
        self._offset_term = loaded.offset_term
        self._purged_to = 0
        self._entries = loaded.entries
        self._repair = loaded.repair
        self._remove_snapshot_files(keep=self._snapshot.meta.index, staged_ahead=False)

    @property
    def path(self) -> str:
        return self._path

    @property
    def repair(self) -> TailRepair | None:
        """The unacknowledged tail cut off when this file was opened, if any."""
        return self._repair

    def close(self) -> None:
        self._conn.close()

    # -- writes -----------------------------------------------------------------------

    def stage_snapshot(self, index: int, data: bytes) -> None:
        """Write the data of the snapshot at `index` to its file now, so that the Ready
        recording it (a compaction) need not. Thread-safe: it may run while `persist` does."""
        path = self._snapshot_path(index)
        if data:
            write_durably(path, data)
        with self._staged_lock:
            self._staged[index] = (len(data), zlib.crc32(data))

    def persist(self, ready: Ready) -> None:
        """Validate the Ready against the current state and write it in one transaction
        (fsync'd when `must_sync`). Raises InvalidRequest with nothing written."""
        plan = self._plan(ready)
        durable = ready.must_sync or ready.snapshot is not None or ready.compaction is not None
        sync = "FULL" if durable else "NORMAL"
        started = self._timer() if durable else 0.0
        recorded = plan.compaction[0] if plan.compaction is not None else plan.snapshot
        crc = 0 if recorded is None else self._write_snapshot_file(recorded)
        with self._transaction(sync):
            if recorded is not None:
                self._put_snapshot(recorded, crc)
            if plan.snapshot is not None:
                self._conn.execute("DELETE FROM entries WHERE idx > ?", (plan.snapshot.meta.index,))
                self._put_log_start(plan.snapshot.meta.index, plan.snapshot.meta.term)
            if plan.entries:
                self._conn.execute("DELETE FROM entries WHERE idx >= ?", (plan.entries[0].index,))
                self._conn.executemany(
                    "INSERT INTO entries (idx, term, type, data, crc) VALUES (?, ?, ?, ?, ?)",
                    [(e.index, e.term, e.type.value, e.data, entry_crc(e)) for e in plan.entries],
                )
            if ready.hard_state is not None:
                self._put_meta(_HARD_STATE, encode_hard_state(ready.hard_state))
            if plan.compaction is not None:
                _, compact_index, compact_term = plan.compaction
                if compact_index is not None:
                    self._put_log_start(compact_index, compact_term)
            purged_to = self._purge(plan)
        self._purged_to = purged_to
        if recorded is not None:
            self._remove_snapshot_files(keep=recorded.meta.index, staged_ahead=True)
        if durable and self._on_durable_write is not None:
            self._on_durable_write(self._timer() - started)

    def install(self, ready: Ready) -> None:
        """Update the in-memory view after `persist(ready)` (same effects, same order)."""
        plan = self._plan(ready)
        if plan.snapshot is not None:
            self._snapshot = plan.snapshot
            self._offset = plan.snapshot.meta.index
            self._offset_term = plan.snapshot.meta.term
            self._entries = []
        if plan.entries:
            del self._entries[plan.entries[0].index - self._offset - 1 :]
            self._entries.extend(plan.entries)
        if ready.hard_state is not None:
            self._hard_state = ready.hard_state
        if plan.compaction is not None:
            snapshot, compact_index, compact_term = plan.compaction
            self._snapshot = snapshot
            if compact_index is not None:
                del self._entries[: compact_index - self._offset]
                self._offset = compact_index
                self._offset_term = compact_term

    def save(self, ready: Ready) -> None:
        """Persist a Ready in the contract's order, all or nothing."""
        self.persist(ready)
        self.install(ready)

    def set_hard_state(self, hard_state: HardState) -> None:
        self.save(Ready(hard_state=hard_state, must_sync=True))

    def append(self, entries: Sequence[Entry]) -> None:
        """Append contiguous entries; an entry at index i replaces stored entries >= i.
        Entries at or below the compaction point are skipped."""
        self.save(Ready(entries=tuple(entries), must_sync=True))

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        """Install a snapshot received from the leader: it replaces the whole log."""
        self.save(Ready(snapshot=snapshot, must_sync=True))

    def set_snapshot(self, snapshot: Snapshot) -> None:
        """Record a locally taken snapshot (the log is not touched)."""
        self.save(Ready(compaction=Compaction(snapshot, self._offset)))

    def compact(self, compact_index: int) -> None:
        """Discard entries up to and including `compact_index`."""
        self.save(Ready(compaction=Compaction(self._snapshot, compact_index)))

    # -- planning -----------------------------------------------------------------------

    def _plan(self, ready: Ready) -> _Plan:
        """Check a Ready against the current view (without changing it) and work out what
        each step does, with the same rules as MemoryRaftStorage."""
        offset, offset_term, last = self._offset, self._offset_term, self.last_index()
        current_snapshot = self._snapshot
        snapshot = ready.snapshot
        if snapshot is not None:
            if snapshot.meta.index <= current_snapshot.meta.index and current_snapshot.meta.index:
                raise InvalidRequest(
                    f"snapshot {snapshot.meta.index} not newer than {current_snapshot.meta.index}"
                )
            current_snapshot = snapshot
            offset = last = snapshot.meta.index
            offset_term = snapshot.meta.term
        entries = list(ready.entries)
        for prev, nxt in itertools.pairwise(entries):
            if nxt.index != prev.index + 1:
                raise InvalidRequest(f"entries not contiguous at {prev.index} -> {nxt.index}")
        if entries:
            if entries[0].index > last + 1:
                raise InvalidRequest(
                    f"append at {entries[0].index} leaves a gap after last index {last}"
                )
            entries = [e for e in entries if e.index > offset]
            if entries:
                last = entries[-1].index
        compaction: tuple[Snapshot, int | None, int] | None = None
        if ready.compaction is not None:
            new_snapshot = ready.compaction.snapshot
            if new_snapshot.meta.index < current_snapshot.meta.index:
                raise InvalidRequest(
                    f"snapshot {new_snapshot.meta.index} older than {current_snapshot.meta.index}"
                )
            if new_snapshot.meta.index > last:
                raise InvalidRequest(f"snapshot {new_snapshot.meta.index} beyond last index {last}")
            compact_index: int | None = ready.compaction.compact_index
            compact_term = offset_term
            if compact_index is not None and compact_index <= offset:
                compact_index = None
            elif compact_index is not None:
                if compact_index > last:
                    raise InvalidRequest(f"compact index {compact_index} beyond last index {last}")
                compact_term = self._term_with(compact_index, entries, offset, offset_term)
            compaction = (new_snapshot, compact_index, compact_term)
        return _Plan(snapshot, entries, compaction)

    def _term_with(self, index: int, new: list[Entry], offset: int, offset_term: int) -> int:
        """Term of `index` once `new` (after any snapshot in the same Ready) is appended."""
        if new and index >= new[0].index:
            return new[index - new[0].index].term
        if index == offset:
            return offset_term
        if offset != self._offset:  # a snapshot in the same Ready replaced the log
            raise InvalidRequest(f"term of {index} unknown after the snapshot")
        return self._entries[index - self._offset - 1].term

    # -- SQL ------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, synchronous: str) -> Iterator[None]:
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _put_meta(self, key: str, value: bytes) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO meta (key, value, crc) VALUES (?, ?, ?)",
            (key, value, _meta_crc(key, value)),
        )

    def _put_snapshot(self, snapshot: Snapshot, crc: int) -> None:
        """The snapshot's metadata and the name of its data file, of CRC32 ``crc``
        (`_write_snapshot_file`)."""
        meta = snapshot.meta
        self._put_meta(_SNAPSHOT_META, encode_snapshot_meta(meta))
        self._put_meta(
            _SNAPSHOT_FILE, _SNAPSHOT_FILE_FORMAT.pack(meta.index, len(snapshot.data), crc)
        )
        self._conn.execute("DELETE FROM meta WHERE key = ?", (_SNAPSHOT_DATA,))

    # -- snapshot files -------------------------------------------------------------------

    def _snapshot_path(self, index: int) -> str:
        return f"{self._path}.snapshot-{index}"

    def _write_snapshot_file(self, snapshot: Snapshot) -> int:
        """The snapshot's data in its file, durably, unless `stage_snapshot` wrote it;
        returns the data's CRC32."""
        index, data = snapshot.meta.index, snapshot.data
        crc = zlib.crc32(data)
        with self._staged_lock:
            staged = self._staged.get(index)
        if data and staged != (len(data), crc):
            write_durably(self._snapshot_path(index), data)
        return crc

    def _remove_snapshot_files(self, keep: int, *, staged_ahead: bool) -> None:
        """Snapshot files other than `keep`'s; with `staged_ahead`, those of later indexes
        stay (staged for a compaction still to come)."""
        folder, name = os.path.split(os.path.abspath(self._path))
        prefix = name + ".snapshot-"
        removed = False
        for entry in os.listdir(folder):
            if not entry.startswith(prefix):
                continue
            suffix = entry[len(prefix) :].removesuffix(".tmp")
            if not suffix.isdigit():
                continue
            index = int(suffix)
            if (index == keep and not entry.endswith(".tmp")) or (staged_ahead and index > keep):
                continue
            os.remove(os.path.join(folder, entry))
            removed = True
        with self._staged_lock:
            for index in [i for i in self._staged if i < keep]:
                del self._staged[index]
        if removed:
            fsync_dir(folder)

    def _read_snapshot_data(self, meta: dict[str, bytes], index: int) -> bytes:
        """The data of the recorded snapshot: inline (version 1) or in its checked file."""
        if _SNAPSHOT_FILE not in meta:
            return meta[_SNAPSHOT_DATA]
        file_index, size, crc = _SNAPSHOT_FILE_FORMAT.unpack(meta[_SNAPSHOT_FILE])
        if file_index != index:
            raise CorruptRaftLog(
                self._path, 0, f"snapshot file of index {file_index}, snapshot at {index}"
            )
        if not size:
            return b""
        path = self._snapshot_path(index)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise CorruptRaftLog(self._path, 0, f"snapshot file {path} is missing") from None
        if len(data) != size or zlib.crc32(data) != crc:
            raise CorruptRaftLog(self._path, 0, f"snapshot file {path}: size or CRC mismatch")
        return data

    def _purge(self, plan: _Plan) -> int:
        """Delete up to `PURGE_BATCH` rows below the log's start as it is after `plan`;
        returns the index up to which rows are then gone."""
        start = self._offset
        if plan.snapshot is not None:
            start = plan.snapshot.meta.index
        if plan.compaction is not None and plan.compaction[1] is not None:
            start = plan.compaction[1]
        if self._purged_to >= start:
            return self._purged_to
        first: int | None = self._conn.execute("SELECT MIN(idx) FROM entries").fetchone()[0]
        if first is None or first > start:
            return start
        upto = min(start, first + PURGE_BATCH - 1)
        self._conn.execute("DELETE FROM entries WHERE idx <= ?", (upto,))
        return upto

    def _put_log_start(self, index: int, term: int) -> None:
        self._put_meta(_LOG_START, _LOG_START_FORMAT.pack(index, term))

    def _create(self, conn: sqlite3.Connection, conf_state: ConfState | None) -> None:
        snapshot = EMPTY_SNAPSHOT
        hard_state = HardState()
        if conf_state is not None and conf_state.members:
            snapshot = bootstrap_snapshot(conf_state)
            hard_state = HardState(term=snapshot.meta.term, commit=snapshot.meta.index)
        self._conn = conn
        with self._transaction("FULL"):
            for statement in _SCHEMA:
                conn.execute(statement)
            self._put_snapshot(snapshot, self._write_snapshot_file(snapshot))
            self._put_log_start(snapshot.meta.index, snapshot.meta.term)
            self._put_meta(_HARD_STATE, encode_hard_state(hard_state))
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _load(self, conn: sqlite3.Connection) -> _Loaded:
        meta: dict[str, bytes] = {}
        for key, value, crc in conn.execute("SELECT key, value, crc FROM meta"):
            if _meta_crc(key, value) != crc:
                raise CorruptRaftLog(self._path, 0, f"CRC mismatch in {key}")
            meta[key] = value
        missing = {_HARD_STATE, _SNAPSHOT_META, _LOG_START} - meta.keys()
        if not {_SNAPSHOT_FILE, _SNAPSHOT_DATA} & meta.keys():
            missing.add(_SNAPSHOT_FILE)
        if missing:
            raise CorruptRaftLog(self._path, 0, f"missing {', '.join(sorted(missing))}")
        try:
            hard_state = decode_hard_state(meta[_HARD_STATE])
            snapshot_meta = decode_snapshot_meta(meta[_SNAPSHOT_META])
            data = self._read_snapshot_data(meta, snapshot_meta.index)
            offset, offset_term = _LOG_START_FORMAT.unpack(meta[_LOG_START])
        except (CodecError, struct.error) as exc:
            raise CorruptRaftLog(self._path, 0, str(exc)) from None
        snapshot = Snapshot(snapshot_meta, data)
        entries, bad, reason = self._read_entries(conn, offset, offset_term)
        repair = None
        if bad is not None:
            if bad <= hard_state.commit:
                raise CorruptRaftLog(
                    self._path,
                    bad,
                    f"{reason}; it is at or below the persisted commit index "
                    f"{hard_state.commit}, so it may hold an acknowledged write: restore this "
                    f"node from its peers (empty data directory, rejoin)",
                )
            last = conn.execute("SELECT MAX(idx) FROM entries").fetchone()[0]
            self._conn = conn
            with self._transaction("FULL"):
                conn.execute("DELETE FROM entries WHERE idx >= ?", (bad,))
            repair = TailRepair(bad, max(last, bad), hard_state.commit, reason)
            log.warning(
                "raft log: cut off a damaged tail above the commit index",
                path=self._path,
                first=repair.first,
                last=repair.last,
                commit=repair.commit,
                reason=reason,
            )
        if hard_state.commit > offset + len(entries):
            raise CorruptRaftLog(
                self._path,
                offset + len(entries) + 1,
                f"missing, yet the persisted commit index is {hard_state.commit}",
            )
        return _Loaded(hard_state, snapshot, offset, offset_term, entries, repair)

    def _read_entries(
        self, conn: sqlite3.Connection, offset: int, offset_term: int
    ) -> tuple[list[Entry], int | None, str]:
        """Entries after the compaction point up to the first bad one (its index and why)."""
        entries: list[Entry] = []
        expected, prev_term = offset + 1, offset_term
        rows = conn.execute(
            "SELECT idx, term, type, data, crc FROM entries WHERE idx > ? ORDER BY idx", (offset,)
        )
        for idx, term, etype, data, crc in rows:
            if idx != expected:
                return entries, expected, f"missing (next stored entry is {idx})"
            if not isinstance(term, int) or not isinstance(data, bytes):
                return entries, idx, "wrong column types"
            try:
                entry = Entry(term, idx, EntryType(etype), data)
            except ValueError:
                return entries, idx, f"unknown entry type {etype!r}"
            if entry_crc(entry) != crc:
                return entries, idx, "CRC mismatch"
            if term < prev_term:
                return entries, idx, f"term {term} below the previous entry's {prev_term}"
            entries.append(entry)
            expected, prev_term = idx + 1, term
        return entries, None, ""


@attrs.frozen
class _Plan:
    snapshot: Snapshot | None
    entries: list[Entry]
    compaction: tuple[Snapshot, int | None, int] | None
    """(snapshot to record, index to compact to or None, its term)."""
