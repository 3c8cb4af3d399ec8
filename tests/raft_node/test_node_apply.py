"""RaftNode applies committed entries on a task of its own: a slow state machine delays
only the callers waiting for its results, not replication, and a snapshot waits for the
entries queued before it."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from dkron_trio.raft.node import ConfigError, NodeConfig, RaftNode
from dkron_trio.raft.types import RaftConfig

from .harness import TICK, Cluster, KvMachine, eventually


async def _slow_leader(
    nursery: trio.Nursery, ticks: int, config: NodeConfig | None = None
) -> tuple[RaftNode, KvMachine, list[KvMachine]]:
    """Three nodes; the leader's state machine takes `ticks` per apply call. Returns the
    leader, its machine and the followers' machines."""
    cluster = Cluster(nursery, config=config or NodeConfig())
    for node_id in (1, 2, 3):
        await cluster.start(node_id)
    leader = await cluster.leader()
    machine = cluster.members[leader.node_id].machine
    machine.apply_delay = ticks * TICK
    followers = [m.machine for m in cluster.members.values() if m.machine is not machine]
    return leader, machine, followers


async def test_a_slow_state_machine_does_not_hold_up_replication(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """While the leader applies one entry for 20 ticks, the next is persisted, sent and
    committed: the followers apply it before the leader has finished the first."""
    async with trio.open_nursery() as nursery:
        leader, machine, followers = await _slow_leader(nursery, 20)
        nursery.start_soon(leader.propose, b"a")
        await eventually(lambda: any(b"a" in call for call in machine.calls))
        started = trio.current_time()
        nursery.start_soon(leader.propose, b"b")
        await eventually(lambda: all(f.commands == [b"a", b"b"] for f in followers))
        assert trio.current_time() - started < 20 * TICK
        assert machine.commands == []  # the leader is still applying "a"
        assert await leader.propose(b"c") == leader.applied
        assert machine.commands == [b"a", b"b", b"c"]
        nursery.cancel_scope.cancel()


async def test_entries_committed_during_an_apply_are_applied_together(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Three proposals made one by one while the machine is busy are committed in Readies
    of their own and then applied in one call, in log order."""
    async with trio.open_nursery() as nursery:
        leader, machine, _ = await _slow_leader(nursery, 30)
        nursery.start_soon(leader.propose, b"a")
        await eventually(lambda: any(b"a" in call for call in machine.calls))
        for data in (b"b", b"c", b"d"):
            nursery.start_soon(leader.propose, data)
            await trio.sleep(2 * TICK)
        await eventually(lambda: machine.commands == [b"a", b"b", b"c", b"d"])
        assert [call for call in machine.calls if call][-2:] == [[b"a"], [b"b", b"c", b"d"]]
        nursery.cancel_scope.cancel()


async def test_the_apply_backlog_bounds_what_waits(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With a backlog of one Ready, a leader whose machine is busy takes no further Ready
    (so sends nothing new) until its queue has room: proposals made meanwhile reach the
    followers only after the leader's apply call returns."""
    config = NodeConfig(apply_backlog=1)
    async with trio.open_nursery() as nursery:
        leader, machine, followers = await _slow_leader(nursery, 20, config)
        nursery.start_soon(leader.propose, b"a")
        await eventually(lambda: any(b"a" in call for call in machine.calls))
        nursery.start_soon(leader.propose, b"b")
        await eventually(lambda: all(f.commands == [b"a", b"b"] for f in followers))
        nursery.start_soon(leader.propose, b"c")  # "b" fills the backlog: "c" waits
        await trio.sleep(10 * TICK)
        assert machine.commands == [] and all(f.commands == [b"a", b"b"] for f in followers)
        await eventually(lambda: all(f.commands == [b"a", b"b", b"c"] for f in followers))
        assert machine.commands[:1] == [b"a"]
        nursery.cancel_scope.cancel()


async def test_a_snapshot_waits_for_the_entries_queued_before_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A follower still applying older entries when the leader's snapshot arrives applies
    them first and then restores (a snapshot never lands under an apply in progress)."""
    config = NodeConfig(raft=RaftConfig(compaction_keep_entries=2))
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery, config=config)
        for node_id in (1, 2, 3):
            await cluster.start(node_id)
        leader = await cluster.leader()
        lagging = next(m for m in cluster.members.values() if m.node is not leader)
        lagging.machine.apply_delay = 100 * TICK
        await leader.propose(b"x")
        await eventually(lambda: any(b"x" in call for call in lagging.machine.calls))
        await leader.propose(b"y")
        cluster.network.isolate(lagging.node.node_id)
        written = [b"x", b"y", *(f"c{i}".encode() for i in range(10))]
        for data in written[2:]:
            await leader.propose(data)
        member = cluster.members[leader.node_id]
        await leader.compact(leader.applied, member.machine.image())
        await eventually(lambda: member.storage.first_index() > leader.applied - 3)
        cluster.network.heal()
        await eventually(lambda: lagging.machine.commands == written)
        assert lagging.machine.restored
        events = [e for e in lagging.machine.events if e in ("apply", "restore")]
        assert events.index("restore") > events.index("apply")
        assert [call for call in lagging.machine.calls if call][:2] == [[b"x"], [b"y"]]
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_apply_backlog_must_be_a_positive_integer(value: object) -> None:
    with pytest.raises(ConfigError, match="apply_backlog"):
        NodeConfig(apply_backlog=value)  # type: ignore[arg-type]
