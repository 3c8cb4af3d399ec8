"""RaftNode on SqliteRaftStorage: a cluster restarted from raft.db keeps its log and state;
the default thread offload drives a real SQLite node; the order checker is not vacuous."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from dkron_trio.raft.node import NodeConfig, RaftNode
from dkron_trio.raft.node_storage import MemoryNodeStorage, NodeStorage
from dkron_trio.raft.sqlite_storage import SqliteRaftStorage
from dkron_trio.raft.transport import MemoryNetwork
from dkron_trio.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    RaftConfig,
    Ready,
)

from .harness import (
    VOTERS,
    Cluster,
    Durable,
    KvMachine,
    OrderViolation,
    WatchedTransport,
    eventually,
)


async def test_cluster_restarted_from_raft_db_keeps_log_and_state(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    paths = {i: tmp_path / f"node{i}" / "raft.db" for i in (1, 2, 3)}
    for path in paths.values():
        path.parent.mkdir()
    written = [f"cmd{i}".encode() for i in range(10)]
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery)
        for i, path in paths.items():
            await cluster.start(i, SqliteRaftStorage(path, VOTERS))
        leader = await cluster.leader()
        for data in written:
            await leader.propose(data)
        await eventually(
            lambda: all(m.machine.commands == written for m in cluster.members.values())
        )
        term = leader.term
        for i in (1, 2, 3):
            member = cluster.stop(i)
            await member.stopped.wait()
            storage = member.storage.inner
            assert isinstance(storage, SqliteRaftStorage)
            storage.close()

        cluster = Cluster(nursery)
        for i, path in paths.items():
            storage = SqliteRaftStorage(path, ConfState(frozenset({99})))
            assert storage.initial_state()[1] == VOTERS and storage.repair is None
            assert storage.initial_state()[0].term >= term
            await cluster.start(i, storage)
        # A fresh state machine replays the committed log from raft.db.
        await eventually(
            lambda: all(m.machine.commands[:10] == written for m in cluster.members.values())
        )
        leader = await cluster.leader()
        assert leader.term > term
        await leader.propose(b"after restart")
        await eventually(
            lambda: all(
                m.machine.commands == [*written, b"after restart"] for m in cluster.members.values()
            )
        )
        for member in list(cluster.members.values()):
            cluster.stop(member.node.node_id)
            await member.stopped.wait()
            storage = member.storage.inner
            assert isinstance(storage, SqliteRaftStorage)
            storage.close()


async def test_single_sqlite_node_on_worker_thread(tmp_path: Path) -> None:
    """Real clock, real thread: the default ThreadOffload persists to raft.db."""
    storage = SqliteRaftStorage(tmp_path / "raft.db", ConfState(frozenset({1})))
    network = MemoryNetwork()
    machine = KvMachine()
    node = RaftNode(1, storage, network.transport(1), machine)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            node.campaign()
            await node.barrier()
            async with trio.open_nursery() as proposers:
                for i in range(50):
                    proposers.start_soon(node.propose, f"t{i}".encode())
            nursery.cancel_scope.cancel()
    storage.close()
    reopened = SqliteRaftStorage(tmp_path / "raft.db")
    data = [e.data for e in reopened.entries(2, reopened.last_index() + 1) if e.data]
    assert sorted(data) == sorted(f"t{i}".encode() for i in range(50))
    assert reopened.initial_state()[0].commit == reopened.last_index()
    reopened.close()


def test_order_checker_catches_a_shell_that_runs_ahead_of_the_disk() -> None:
    durable = Durable(terms={1: 1}, hard_state=HardState(2, 1, 1))
    transport = WatchedTransport(MemoryNetwork().transport(1), durable, [])
    append = Message(MessageType.APPEND, 2, 1, 2, log_term=1, index=1, entries=(Entry(2, 2),))
    with pytest.raises(OrderViolation, match="entry 2 sent before"):
        transport.send([append])
    with pytest.raises(OrderViolation, match="of term 3 sent"):
        transport.send([Message(MessageType.VOTE, 2, 1, 3)])
    durable.record(Ready(entries=(Entry(2, 2),)))
    transport.send([append])


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_learner_joins_from_a_compacted_log_through_a_snapshot(
    autojump_clock: trio.testing.MockClock, tmp_path: Path, kind: str
) -> None:
    opened: list[SqliteRaftStorage] = []

    def storage(node_id: int, conf: ConfState | None) -> NodeStorage:
        if kind == "memory":
            return MemoryNodeStorage(conf)
        opened.append(SqliteRaftStorage(tmp_path / f"raft{node_id}.db", conf))
        return opened[-1]

    config = NodeConfig(raft=RaftConfig(compaction_keep_entries=2))
    written = [f"c{i}".encode() for i in range(20)]
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery, config=config)
        for i in (1, 2, 3):
            await cluster.start(i, storage(i, VOTERS))
        leader = await cluster.leader()
        for data in written:
            await leader.propose(data)
        member = cluster.members[leader.node_id]
        await leader.compact(leader.applied, member.machine.image())
        await eventually(lambda: member.storage.first_index() > 15)
        joiner = await cluster.start(4, storage(4, None))
        await leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
        await eventually(lambda: joiner.machine.commands == written)
        assert joiner.machine.restored and joiner.machine.restored[-1].index >= 20
        await leader.propose(b"next")
        await eventually(lambda: joiner.machine.commands == [*written, b"next"])
        assert 4 in leader.status().conf_state.learners
        nursery.cancel_scope.cancel()
    for sqlite_storage in opened:
        sqlite_storage.close()
