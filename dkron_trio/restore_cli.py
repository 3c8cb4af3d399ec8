"""``dkron-trio restore FILE``: a new single server's data dir from a ``dkron-trio backup``.

Offline, into an empty data dir of a server that is not running. It writes

* ``state.db``: the image (checked like a Raft snapshot is, `sqlite_image.stage_image`), with
  the Raft address book replaced by this server alone, so the old cluster's servers are
  neither dialled nor counted;
* ``raft.db``: a Raft log holding one snapshot at the image's applied index whose
  configuration is this server alone, and a commit index at it. The server then starts as
  a restarted one (``RaftServer._catch_up`` finds the state at the snapshot, nothing to
  replay), elects itself, and its new entries land above the applied index.

``raft.db`` is written last: its presence is what makes a server start as restarted
rather than form a cluster, so a restore that fails half-way leaves no usable-looking
data dir (and removes what it wrote).
"""

import contextlib
import sqlite3
import sys
from pathlib import Path

from dkron_trio.cluster.config import ClusterConfig
from dkron_trio.durable import fsync_dir
from dkron_trio.raft.sqlite_storage import SqliteRaftStorage
from dkron_trio.raft.storage import BOOTSTRAP_INDEX, BOOTSTRAP_TERM
from dkron_trio.raft.types import ConfState, HardState, Ready, Snapshot, SnapshotMeta
from dkron_trio.store import rules
from dkron_trio.store.base import RaftMember
from dkron_trio.store.replica import ImageError
from dkron_trio.store.sqlite_cache import JobCache
from dkron_trio.store.sqlite_image import stage_image
from dkron_trio.store.sqlite_tx import SqliteTx, connect

STATE_FILE = "state.db"
RAFT_FILE = "raft.db"


class RestoreError(Exception):
    """A restore refused or failed; the message says why (nothing is left behind)."""


def restore_data_dir(image: bytes, cluster: ClusterConfig) -> int:
    """Write ``state.db`` and ``raft.db`` for ``cluster``'s server into its (empty or
    missing) data dir from a state image; returns the image's applied index."""
    data_dir = cluster.data_dir
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise RestoreError(f"data dir {data_dir} is not empty: restore needs a fresh one")
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _write(image, cluster)
    except BaseException:
        for name in (STATE_FILE, RAFT_FILE):
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    (data_dir / (name + suffix)).unlink()
        raise


def _write(image: bytes, cluster: ClusterConfig) -> int:
    state_path = cluster.data_dir / STATE_FILE
    try:
        applied = stage_image(str(state_path), image)
    except ImageError as exc:
        raise RestoreError(f"not a dkron-trio backup: {exc}") from None
    if applied < BOOTSTRAP_INDEX:
        raise RestoreError("the backup holds no applied state (applied index 0)")
    me = RaftMember(cluster.node_id, cluster.node_name, str(cluster.advertise))
    state = _only_member(state_path, me)
    snapshot = Snapshot(
        SnapshotMeta(applied, BOOTSTRAP_TERM, ConfState(voters=frozenset({me.node_id}))), state
    )
    raft = SqliteRaftStorage(cluster.data_dir / RAFT_FILE)
    try:
        raft.save(
            Ready(
                snapshot=snapshot,
                hard_state=HardState(term=BOOTSTRAP_TERM, commit=applied),
                must_sync=True,
            )
        )
    finally:
        raft.close()
    fsync_dir(str(cluster.data_dir))
    return applied


def _only_member(path: Path, me: RaftMember) -> bytes:
    """Make ``me`` the only server in the state's address book (the applied index stays);
    returns the state's image as it now is."""
    conn = connect(str(path))
    try:
        tx = SqliteTx(conn, JobCache())
        conn.execute("BEGIN IMMEDIATE")
        for old in tx.load_members():
            tx.remove_member(old.node_id)
        rules.apply_add_member(tx, me)
        conn.execute("COMMIT")
        conn.execute("BEGIN")
        try:
            return conn.serialize()
        finally:
            conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise RestoreError(f"{path}: {exc}") from exc
    finally:
        conn.close()


def restore(image_path: Path, cluster: ClusterConfig) -> int:
    """``dkron-trio restore``; returns the process exit code."""
    try:
        image = image_path.read_bytes()
        applied = restore_data_dir(image, cluster)
    except (OSError, RestoreError) as exc:
        print(f"dkron-trio restore: {exc}", file=sys.stderr)
        return 1
    print(
        f"restored {image_path} (applied index {applied}) into {cluster.data_dir} "
        f"for server {cluster.node_name}; start it with the same --data-dir and --node-name"
    )
    return 0
