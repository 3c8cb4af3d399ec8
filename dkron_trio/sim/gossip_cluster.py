"""SWIM clusters in simulation: N SwimCores on one `GossipLoop` with a seeded `SimNetwork`.

Packets travel as message objects (the codec has its own tests), which keeps runs of hundreds
of nodes fast. Faults: crashes, restarts, stalls (a long GC or a frozen VM: no ticks, datagrams
wait in the socket buffer), loss, delay, duplication, partitions. Every membership event any
node reports is logged with the time it was reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from dkron_trio.gossip.config import GossipConfig
from dkron_trio.gossip.messages import Addr, MemberState, Tags
from dkron_trio.gossip.swim import SwimCore
from dkron_trio.gossip.swim_types import EventKind, Member, SwimRng
from dkron_trio.sim.gossip_loop import GossipLoop
from dkron_trio.sim.network import LinkConditions, SimNetwork


def sim_addr(node_id: int) -> Addr:
    return (f"10.0.{node_id // 256}.{node_id % 256}", 8946)


def sim_name(node_id: int) -> str:
    return f"node{node_id}"


@attrs.frozen
class LoggedEvent:
    time: int
    """Simulated milliseconds."""
    observer: int
    kind: EventKind
    member: str
    incarnation: int


@attrs.define
class GossipCluster:
    """The cores share one seeded rng with the network (runs are sequential, so a run is a
    function of the seed)."""

    loop: GossipLoop
    cores: dict[int, SwimCore]
    log: list[LoggedEvent]
    _rng: SwimRng
    _config: GossipConfig

    @classmethod
    def build(
        cls,
        size: int,
        rng: SwimRng,
        *,
        config: GossipConfig | None = None,
        conditions: LinkConditions | None = None,
        tags: Callable[[int], Tags] | None = None,
        formed: bool = False,
        slot_ms: int = 5,
    ) -> GossipCluster:
        """`formed`: every node starts knowing every other (SwimCore's `known`), as after the
        join news has spread; otherwise each knows only itself (see `join_all`)."""
        network = SimNetwork(rng, conditions or LinkConditions())
        ids = {sim_addr(i): i for i in range(size)}
        log: list[LoggedEvent] = []

        def record(now: int, observer: int, core: SwimCore) -> None:
            for event in core.take_events():
                m = event.member
                log.append(LoggedEvent(now, observer, event.kind, m.name, m.incarnation))

        loop = GossipLoop(rng, network, sim_addr, ids, record, slot_ms)
        cluster = cls(loop, {}, log, rng, config or GossipConfig())
        members = [
            Member(sim_name(i), sim_addr(i), tags(i) if tags else {}, 1, MemberState.ALIVE)
            for i in range(size)
        ]
        for i in range(size):
            cluster.start(i, members[i].tags, known=members if formed else ())
        log.clear()
        return cluster

    @property
    def now(self) -> int:
        return self.loop.now

    def start(self, node_id: int, tags: Tags, known: Iterable[Member] = ()) -> SwimCore:
        """Boot a fresh core under `node_id` (after a crash: a restart from scratch)."""
        core = SwimCore.create(
            sim_name(node_id), sim_addr(node_id), tags, self._config, self._rng, known=known
        )
        self.cores[node_id] = core
        self.loop.start(node_id, core)
        return core

    def join_all(self, seed: int = 0) -> None:
        """Every node joins through `seed`."""
        for node_id, core in self.cores.items():
            if node_id != seed:
                core.join([sim_addr(seed)])
                self.loop.flush(node_id)

    def crash(self, node_id: int) -> None:
        self.loop.stop(node_id)

    def stall(self, node_id: int, start_ms: int, duration_ms: int) -> None:
        self.loop.at(start_ms, lambda _: self.loop.stall(node_id))
        self.loop.at(start_ms + duration_ms, lambda _: self.loop.resume(node_id))

    def at(self, time_ms: int, action: Callable[[int], None]) -> None:
        self.loop.at(time_ms, action)

    def run_until(self, ms: int) -> None:
        self.loop.run_until(ms)

    def state_of(self, observer: int, node_id: int) -> MemberState | None:
        return self.cores[observer].state_of(sim_name(node_id))

    def events(self, kind: EventKind, member: str | None = None) -> list[LoggedEvent]:
        return [e for e in self.log if e.kind is kind and (member is None or e.member == member)]
