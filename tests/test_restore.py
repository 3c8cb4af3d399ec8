"""`restore_data_dir`: the files a restored server starts from, and what it refuses."""

from pathlib import Path

import pytest

from dkron_trio.cluster.config import ClusterConfig
from dkron_trio.config import HostPort
from dkron_trio.raft.sqlite_storage import SqliteRaftStorage
from dkron_trio.restore_cli import RestoreError, restore_data_dir
from dkron_trio.store import rules
from dkron_trio.store.base import JobQuery, RaftMember
from dkron_trio.store.sqlite import open_sqlite_store
from tests.store.helpers import NOTIFY, job


def _cluster(data_dir: Path) -> ClusterConfig:
    address = HostPort("127.0.0.1", 7001)
    return ClusterConfig(node_name="fresh", data_dir=data_dir, rpc_bind=address, advertise=address)


async def _image(path: Path) -> bytes:
    async with open_sqlite_store(path) as store:
        await store.apply_replicated(
            7,
            [
                lambda tx: rules.apply_set_job(tx, job("kept", notify=NOTIFY)),
                lambda tx: rules.apply_add_member(tx, RaftMember(42, "gone", "10.0.0.9:6868")),
            ],
        )
        _, image = await store.snapshot_image()
    return image


async def test_restore_writes_state_and_a_raft_snapshot_of_this_server_alone(
    tmp_path: Path,
) -> None:
    cluster = _cluster(tmp_path / "data")
    assert restore_data_dir(await _image(tmp_path / "old.db"), cluster) == 7
    async with open_sqlite_store(cluster.data_dir / "state.db") as store:
        assert await store.applied_index() == 7
        assert [j.name for j in (await store.list_jobs(JobQuery())).jobs] == ["kept"]
        assert (await store.get_job("kept")).notify == NOTIFY
        me = RaftMember(cluster.node_id, "fresh", "127.0.0.1:7001")
        assert await store.raft_members() == [me]
    raft = SqliteRaftStorage(cluster.raft_path)
    try:
        snapshot = raft.snapshot()
        assert (snapshot.meta.index, raft.last_index()) == (7, 7)
        assert snapshot.meta.conf_state.voters == {cluster.node_id}
        assert raft.initial_state()[0].commit == 7
        assert snapshot.data.startswith(b"SQLite format 3\x00")
    finally:
        raft.close()


def test_restore_refuses_a_non_empty_data_dir(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "state.db").write_bytes(b"")
    with pytest.raises(RestoreError, match="not empty"):
        restore_data_dir(b"SQLite format 3\x00", _cluster(tmp_path / "data"))


def test_restore_of_a_bad_image_leaves_nothing(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path / "data")
    with pytest.raises(RestoreError, match="not a dkron-trio backup"):
        restore_data_dir(b"SQLite format 3\x00 but then garbage" * 100, cluster)
    assert list(cluster.data_dir.iterdir()) == []
