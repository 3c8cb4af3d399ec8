"""SWIM clusters in the deterministic simulator: false deaths, detection, dissemination,
joins, restarts and healed partitions. A failing seed replays exactly with `run_scenario`."""

from __future__ import annotations

import random

import attrs
import pytest

from dkron_trio.gossip.messages import MemberState
from dkron_trio.gossip.swim_types import EventKind
from dkron_trio.sim.gossip_cluster import GossipCluster, sim_addr, sim_name
from dkron_trio.sim.network import LinkConditions

SIZE = 50
SEEDS = 100
STALLED, CRASHED, RETAGGED = 1, 2, 3
FAULT_MS = 500
STALL_MS = 3000
END_MS = 14000


@attrs.frozen
class Outcome:
    seed: int
    false_deaths: list[tuple[int, str]]
    """(observer, member) for every healthy member some node declared failed."""
    detection_ms: int | None
    """Time from the crash until every other member had marked it failed."""


def run_scenario(seed: int) -> Outcome:
    """50 nodes, 10% loss: one node stalls for 3 s while another crashes."""
    cluster = GossipCluster.build(
        SIZE, random.Random(seed), conditions=LinkConditions(drop=0.1), formed=True
    )
    cluster.run_until(FAULT_MS)
    cluster.stall(STALLED, FAULT_MS, STALL_MS)
    cluster.crash(CRASHED)
    cluster.run_until(END_MS)
    observers = {i for i in range(SIZE) if i != CRASHED}
    failed = cluster.events(EventKind.FAILED)
    false_deaths = [(e.observer, e.member) for e in failed if e.member != sim_name(CRASHED)]
    marks = {e.observer: e.time for e in failed if e.member == sim_name(CRASHED)}
    detection = max(marks.values()) - FAULT_MS if set(marks) == observers else None
    return Outcome(seed, false_deaths, detection)


def retag_time(seed: int, horizon_ms: int = 3500) -> int | None:
    """Milliseconds until every other member reported one member's new tags (None: not by
    the horizon)."""
    cluster = GossipCluster.build(SIZE, random.Random(seed), formed=True)
    cluster.run_until(FAULT_MS)
    cluster.cores[RETAGGED].set_tags({"role": "server"})
    cluster.loop.flush(RETAGGED)
    for now in range(FAULT_MS + 100, FAULT_MS + horizon_ms + 1, 100):
        cluster.run_until(now)
        updated = cluster.events(EventKind.UPDATED, sim_name(RETAGGED))
        if len({e.observer for e in updated}) == SIZE - 1:
            return max(e.time for e in updated) - FAULT_MS
    return None


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    return [run_scenario(seed) for seed in range(SEEDS)]


def _percentile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


@pytest.mark.slow
def test_no_healthy_member_is_declared_dead(outcomes: list[Outcome]) -> None:
    bad = [(o.seed, o.false_deaths) for o in outcomes if o.false_deaths]
    assert not bad


@pytest.mark.slow
def test_a_crashed_member_is_marked_failed_by_everyone(outcomes: list[Outcome]) -> None:
    """Within 10 s at p99 with memberlist's timings: the probe rotation (swim_probe) has
    some member probe the crashed one within about a second, the probe fails a second later,
    and the suspicion floor at 50 members is 4 * log10(50) * 1 s = 6.8 s."""
    times = [o.detection_ms for o in outcomes]
    assert None not in times, [o.seed for o in outcomes if o.detection_ms is None]
    done = [t for t in times if t is not None]
    assert _percentile(done, 0.5) <= 10_000
    assert _percentile(done, 0.99) <= 10_000


@pytest.mark.slow
def test_a_tag_change_reaches_everyone_within_3_seconds() -> None:
    times = {seed: retag_time(seed) for seed in range(SEEDS)}
    late = {seed: t for seed, t in times.items() if t is None or t > 3000}
    assert not late


def test_a_run_replays_exactly() -> None:
    def run() -> list[object]:
        cluster = GossipCluster.build(
            20, random.Random(5), conditions=LinkConditions(drop=0.1, duplicate=0.05), formed=True
        )
        cluster.crash(3)
        cluster.run_until(12_000)
        return list(cluster.log)

    first = run()
    assert first and first == run()


def test_fifty_nodes_join_through_one_seed() -> None:
    cluster = GossipCluster.build(
        SIZE, random.Random(11), conditions=LinkConditions(drop=0.05),
        tags=lambda i: {"role": "agent", "index": str(i)},
    )
    cluster.join_all(seed=0)
    cluster.run_until(10_000)
    for core in cluster.cores.values():
        assert core.joined
        members = core.members()
        assert len(members) == SIZE
        assert all(m.state is MemberState.ALIVE for m in members)
        assert {m.tags["index"] for m in members} == {str(i) for i in range(SIZE)}


def test_a_restarted_member_rejoins_with_a_new_incarnation() -> None:
    cluster = GossipCluster.build(10, random.Random(3), formed=True)
    cluster.crash(4)
    cluster.run_until(30_000)
    assert all(cluster.state_of(i, 4) is MemberState.DEAD for i in range(10) if i != 4)
    restarted = cluster.start(4, {"boot": "2"})
    restarted.join([sim_addr(0)])
    cluster.loop.flush(4)
    cluster.run_until(40_000)
    for i in range(10):
        m = cluster.cores[i].member(sim_name(4))
        assert m is not None and m.state is MemberState.ALIVE and m.tags == {"boot": "2"}
        assert m.incarnation > 1
    rejoined = [e.observer for e in cluster.events(EventKind.JOINED, sim_name(4))]
    assert sorted(set(rejoined)) == [i for i in range(10) if i != 4]


def test_a_healed_partition_merges_again() -> None:
    cluster = GossipCluster.build(10, random.Random(8), formed=True)
    left, right = range(5), range(5, 10)
    cluster.loop.network.partition(left, right)
    cluster.run_until(60_000)
    assert all(cluster.state_of(0, j) is MemberState.DEAD for j in right)
    cluster.loop.network.heal()
    cluster.run_until(150_000)
    for i in range(10):
        states = [m.state for m in cluster.cores[i].members()]
        assert states == [MemberState.ALIVE] * 10, i


def test_two_hundred_nodes_detect_a_crash() -> None:
    cluster = GossipCluster.build(200, random.Random(2), formed=True)
    cluster.crash(7)
    cluster.run_until(20_000)
    assert all(cluster.state_of(i, 7) is MemberState.DEAD for i in range(200) if i != 7)
    assert not [e for e in cluster.events(EventKind.FAILED) if e.member != sim_name(7)]
