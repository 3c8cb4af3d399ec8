"""RaftNode under MockClock on a MemoryNetwork: elections, proposals, the Ready order,
cancellation, group commit, leadership loss, slow disks."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from dkron_trio.raft.errors import NotLeader
from dkron_trio.raft.node import (
    ConfigError,
    LeadershipChange,
    LeadershipLost,
    NodeConfig,
    NodeStopped,
)
from dkron_trio.raft.types import RaftConfig

from .harness import TICK, Cluster, Member, eventually


async def three(nursery: trio.Nursery, *, delay: float = 0.0) -> Cluster:
    cluster = Cluster(nursery)
    for node_id in (1, 2, 3):
        await cluster.start(node_id, delay=delay)
    return cluster


async def test_three_nodes_elect_one_leader(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        cluster = await three(nursery)
        leader = await cluster.leader()
        terms = {m.node.term for m in cluster.members.values()}
        assert terms == {leader.term}
        # The election took between one and two election timeouts plus a few ticks.
        assert trio.current_time() < 40 * TICK
        nursery.cancel_scope.cancel()


async def test_proposals_resolve_after_apply_on_every_node(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        cluster = await three(nursery)
        leader = await cluster.leader()
        machine = cluster.members[leader.node_id].machine
        results = []
        for i in range(20):
            index = await leader.propose(f"cmd{i}".encode())
            assert machine.applied[-1].index == index  # applied before it resolved
            results.append(index)
        assert results == sorted(results) and len(set(results)) == 20
        expected = [f"cmd{i}".encode() for i in range(20)]
        await eventually(
            lambda: all(m.machine.commands == expected for m in cluster.members.values())
        )
        nursery.cancel_scope.cancel()


async def test_ready_order_is_persist_send_apply(autojump_clock: trio.testing.MockClock) -> None:
    """The wrappers raise OrderViolation on any message or apply that runs ahead of the disk;
    the event log shows, for the leader, persist before send before apply in each Ready."""
    async with trio.open_nursery() as nursery:
        cluster = await three(nursery, delay=TICK / 2)
        leader = await cluster.leader()
        async with trio.open_nursery() as proposers:
            for i in range(30):
                proposers.start_soon(leader.propose, f"w{i}".encode())
        events = cluster.members[leader.node_id].events
        assert "persist" in events and "send" in events and "apply" in events
        first_apply = events.index("apply")
        assert "persist" in events[:first_apply] and "send" in events[:first_apply]
        nursery.cancel_scope.cancel()


async def test_many_concurrent_proposals_share_few_persists(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        cluster = await three(nursery, delay=0.02)
        leader = await cluster.leader()
        durable = cluster.members[leader.node_id].storage.durable
        before = durable.persists
        results: list[int] = []

        async def one(i: int) -> None:
            index = await leader.propose(f"p{i}".encode())
            assert isinstance(index, int)
            results.append(index)

        async with trio.open_nursery() as proposers:
            for i in range(500):
                proposers.start_soon(one, i)
        assert len(set(results)) == 500
        persists = durable.persists - before
        assert persists <= 10, persists
        nursery.cancel_scope.cancel()


async def test_leadership_loss_fails_pending_proposals(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        cluster = await three(nursery)
        old = await cluster.leader()
        old_term = old.term
        cluster.network.isolate(old.node_id)
        errors: list[BaseException] = []

        async def doomed() -> None:
            try:
                await old.propose(b"lost")
            except LeadershipLost as e:
                errors.append(e)

        async with trio.open_nursery() as proposers:
            for _ in range(3):
                proposers.start_soon(doomed)
        assert len(errors) == 3 and not old.is_leader
        others = [i for i in cluster.members if i != old.node_id]
        new = await cluster.leader(among=others)
        assert new.term > old_term
        cluster.network.heal()
        await eventually(lambda: old.leader_id == new.node_id)
        with pytest.raises(NotLeader) as e:
            await old.propose(b"x")
        assert e.value.leader_id == new.node_id
        # The isolated leader's entry was overwritten everywhere.
        await new.propose(b"after")
        await eventually(lambda: cluster.members[old.node_id].machine.commands == [b"after"])
        nursery.cancel_scope.cancel()


async def test_cancelling_a_node_mid_persist_fails_its_callers_and_it_restarts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        cluster = await three(nursery, delay=TICK)
        leader = await cluster.leader()
        await leader.propose(b"before")
        failures: list[BaseException] = []

        async def pending() -> None:
            try:
                await leader.propose(b"maybe")
            except NodeStopped as e:
                failures.append(e)

        async with trio.open_nursery() as proposers:
            proposers.start_soon(pending)
            await trio.sleep(TICK / 2)  # the proposal is now inside a persist
            member = cluster.stop(leader.node_id)
        assert len(failures) == 1
        with pytest.raises(NodeStopped):
            await leader.propose(b"late")
        others = list(cluster.members)
        new = await cluster.leader(among=others)
        await new.propose(b"after")
        restarted = await cluster.start(leader.node_id, member.storage.inner)
        await eventually(lambda: b"after" in restarted.machine.commands)
        assert restarted.machine.commands[0] == b"before"
        nursery.cancel_scope.cancel()


async def test_slow_disk_below_election_timeout_causes_no_elections(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Every persist takes 3 ticks: sends wait for it, but heartbeats still arrive well
    within the election timeout (10 ticks), so the first leader stays for the whole run."""
    async with trio.open_nursery() as nursery:
        cluster = await three(nursery, delay=3 * TICK)
        leader = await cluster.leader()
        term = leader.term
        for i in range(50):
            await leader.propose(f"s{i}".encode())
            await trio.sleep(TICK)
        assert {m.node.term for m in cluster.members.values()} == {term}
        assert leader.is_leader
        nursery.cancel_scope.cancel()


BUSY = pytest.mark.parametrize("stage", ["persist", "apply"])
"""The two waits of the driver during which heartbeats still leave (`busy_since`)."""


def _slow(member: Member, stage: str, ticks: int) -> None:
    """Make one member's persists (its disk) or applies (its state machine) take `ticks`."""
    if stage == "persist":
        member.offload.delay = ticks * TICK
    else:
        member.machine.apply_delay = ticks * TICK


@BUSY
async def test_a_leader_busy_longer_than_the_election_timeout_keeps_its_term(
    autojump_clock: trio.testing.MockClock, stage: str
) -> None:
    """While the leader writes (a snapshot's image, a slow disk) or applies for 25 ticks
    (the election timeout is 10 to 19), its heartbeats still go out, and so do the
    followers' replies: nobody campaigns."""
    async with trio.open_nursery() as nursery:
        cluster = await three(nursery)
        leader = await cluster.leader()
        term = leader.term
        _slow(cluster.members[leader.node_id], stage, 25)
        for i in range(4):
            await leader.propose(f"slow{i}".encode())
        assert {m.node.term for m in cluster.members.values()} == {term}
        assert leader.is_leader
        nursery.cancel_scope.cancel()


@BUSY
async def test_followers_busy_longer_than_the_election_timeout_keep_their_leader(
    autojump_clock: trio.testing.MockClock, stage: str
) -> None:
    """Check-quorum does not depose a leader whose followers are busy writing or applying:
    their heartbeat replies leave meanwhile."""
    async with trio.open_nursery() as nursery:
        cluster = await three(nursery)
        leader = await cluster.leader()
        term = leader.term
        for node_id, member in cluster.members.items():
            if node_id != leader.node_id:
                _slow(member, stage, 25)
        for i in range(4):
            await leader.propose(f"slow{i}".encode())
        await trio.sleep(50 * TICK)
        assert {m.node.term for m in cluster.members.values()} == {term}
        assert leader.is_leader
        nursery.cancel_scope.cancel()


@BUSY
async def test_a_leader_stuck_for_good_is_replaced(
    autojump_clock: trio.testing.MockClock, stage: str
) -> None:
    """Heartbeats during a persist or an apply stop after `busy_heartbeat_timeouts`
    election timeouts: a leader whose disk or state machine never returns looks dead to
    its followers, which elect another."""
    async with trio.open_nursery() as nursery:
        cluster = await three(nursery)
        leader = await cluster.leader()
        term = leader.term
        _slow(cluster.members[leader.node_id], stage, 1000)
        nursery.start_soon(leader.propose, b"stuck")
        others = [i for i in cluster.members if i != leader.node_id]
        new = await cluster.leader(among=others)
        assert new.term > term
        nursery.cancel_scope.cancel()


async def test_read_index_and_barrier(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        cluster = await three(nursery)
        leader = await cluster.leader()
        assert await leader.barrier() == leader.term
        index = await leader.propose(b"w")
        assert isinstance(index, int)
        follower = next(m.node for m in cluster.members.values() if m.node is not leader)
        read = await follower.read_index()
        assert read >= index and follower.applied >= index
        assert await leader.read_index() >= index
        with pytest.raises(NotLeader):
            await follower.barrier()
        nursery.cancel_scope.cancel()


async def test_leadership_changes_are_published(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        cluster = await three(nursery)
        node = cluster.members[1].node
        seen: list[LeadershipChange] = []
        async for change in node.leadership():
            seen.append(change)
            if change.leader_id:
                break
        assert seen[0].leader_id == 0 and seen[-1].term == node.term
        assert seen[-1].is_leader == node.is_leader
        nursery.cancel_scope.cancel()


def test_node_config_validates_and_scales_ticks() -> None:
    assert NodeConfig(raft_multiplier=5).tick_length == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="raft_multiplier"):
        NodeConfig(raft_multiplier=0)
    with pytest.raises(ConfigError, match="tick_seconds"):
        NodeConfig(tick_seconds=float("nan"))
    assert NodeConfig(raft=RaftConfig(election_ticks=20)).raft.election_ticks == 20
