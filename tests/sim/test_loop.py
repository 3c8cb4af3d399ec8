"""The generic event loop and the seeded network, driven by a toy protocol (no Raft)."""

from __future__ import annotations

import random

import attrs
import pytest

from dkron_trio.sim.loop import Simulation
from dkron_trio.sim.network import LinkConditions, SimNetwork


@attrs.define
class Pinger:
    """Each tick sends a numbered ping to every peer; remembers what it received."""

    node_id: int
    peers: list[int]
    received: list[tuple[int, int, int]] = attrs.field(factory=list)
    ticks: int = 0
    _outbox: list[tuple[int, int]] = attrs.field(factory=list)

    def tick(self, now: int) -> None:
        self.ticks += 1
        for peer in self.peers:
            self._outbox.append((peer, self.ticks))

    def receive(self, src: int, msg: int, now: int) -> None:
        self.received.append((now, src, msg))

    def take_outbox(self, now: int) -> list[tuple[int, int]]:
        out, self._outbox = self._outbox, []
        return out


def make(
    seed: int, conditions: LinkConditions | None = None, slot_ms: int = 1
) -> tuple[Simulation[int], dict[int, Pinger]]:
    rng = random.Random(seed)
    network = SimNetwork(rng)
    if conditions is not None:
        network.set_conditions(conditions)
    sim: Simulation[int] = Simulation(rng, network, 100, slot_ms)
    nodes = {i: Pinger(i, [p for p in (1, 2, 3) if p != i]) for i in (1, 2, 3)}
    for i, node in nodes.items():
        sim.start(i, node)
    return sim, nodes


def test_nodes_tick_once_per_tick() -> None:
    sim, nodes = make(1)
    sim.run_until(10_000)
    assert all(n.ticks == 100 for n in nodes.values())
    assert sim.now == 10_000


def test_reliable_network_delivers_everything_in_order_of_arrival() -> None:
    sim, nodes = make(1, LinkConditions(min_delay=3, max_delay=3))
    sim.run_until(1_000)
    got = [msg for _, src, msg in nodes[1].received if src == 2]
    assert got == list(range(1, len(got) + 1))
    assert len(got) >= 9


def test_loss_and_duplication_rates() -> None:
    sim, nodes = make(2, LinkConditions(drop=0.3, duplicate=0.2, min_delay=1, max_delay=50))
    sim.run_until(100_000)
    received = sum(len(n.received) for n in nodes.values())
    sent = sum(n.ticks for n in nodes.values()) * 2
    # Each message survives with 0.7 and then arrives 1.2 times on average: 0.84.
    assert 0.78 < received / sent < 0.90
    pairs = [(src, msg) for _, src, msg in nodes[1].received]
    assert len(set(pairs)) < len(pairs)


def test_random_delays_reorder_messages() -> None:
    sim, nodes = make(3, LinkConditions(min_delay=0, max_delay=250))
    sim.run_until(10_000)
    got = [msg for _, src, msg in nodes[1].received if src == 2]
    assert got != sorted(got)


def test_symmetric_partition_and_heal() -> None:
    sim, nodes = make(4)
    sim.network.partition([1], [2, 3])
    sim.run_until(1_000)
    assert nodes[1].received == []
    assert {src for _, src, _ in nodes[2].received} == {3}
    sim.network.heal()
    sim.run_until(2_000)
    assert {src for _, src, _ in nodes[1].received} == {2, 3}


def test_asymmetric_partition() -> None:
    sim, nodes = make(5)
    for other in (2, 3):
        sim.network.block(other, 1)
    sim.run_until(1_000)
    assert nodes[1].received == []
    assert 1 in {src for _, src, _ in nodes[2].received}


def test_messages_in_flight_when_a_partition_starts_are_lost() -> None:
    sim, nodes = make(6, LinkConditions(min_delay=50, max_delay=50))
    sim.run_until(120)
    sim.network.partition([1], [2, 3])
    before = len(nodes[1].received)
    sim.run_until(400)
    assert len(nodes[1].received) == before


def test_stopped_node_gets_nothing_and_restarts_fresh() -> None:
    sim, nodes = make(7)
    sim.run_until(1_000)
    sim.stop(1)
    with pytest.raises(ValueError, match="not running"):
        sim.stop(1)
    sim.run_until(2_000)
    assert nodes[1].ticks == 10
    fresh = Pinger(1, [2, 3])
    sim.start(1, fresh)
    with pytest.raises(ValueError, match="already running"):
        sim.start(1, fresh)
    sim.run_until(3_000)
    assert fresh.ticks == 10
    assert nodes[1].ticks == 10


def test_slots_batch_deliveries() -> None:
    sim, _ = make(8, LinkConditions(min_delay=1, max_delay=20), slot_ms=25)
    sim.run_until(10_000)
    assert sim.deliveries == 600
    assert sim.events < 300 + 600
    fine, _ = make(8, LinkConditions(min_delay=1, max_delay=20))
    fine.run_until(10_000)
    assert fine.events > sim.events


def test_actions_run_at_their_time_in_order() -> None:
    sim, _ = make(9)
    seen: list[tuple[str, int]] = []
    sim.at(500, lambda now: seen.append(("b", now)))
    sim.at(200, lambda now: seen.append(("a", now)))
    sim.at(500, lambda now: seen.append(("c", now)))
    sim.run_until(1_000)
    assert seen == [("a", 200), ("b", 500), ("c", 500)]


def test_equal_seeds_give_equal_traces() -> None:
    conditions = LinkConditions(drop=0.1, duplicate=0.1, min_delay=0, max_delay=80)
    hashes = []
    for seed in (11, 11, 12):
        sim, _ = make(seed, conditions)
        sim.run_until(5_000)
        hashes.append(sim.trace_hash())
    assert hashes[0] == hashes[1] != hashes[2]


def test_condition_validation() -> None:
    with pytest.raises(ValueError, match="drop"):
        LinkConditions(drop=1.5)
    with pytest.raises(ValueError, match="max_delay"):
        LinkConditions(min_delay=5, max_delay=1)
    with pytest.raises(ValueError, match="min_delay"):
        LinkConditions(min_delay=-1)
    with pytest.raises(ValueError, match="slot_ms"):
        Simulation(random.Random(0), SimNetwork(random.Random(0)), 100, 0)
