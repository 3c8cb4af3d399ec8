"""A tiny hand-driven network of SwimCores for rule tests: every core ticks together and
datagrams are delivered (or dropped by a filter) until nothing is left in flight."""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

from dkron_trio.gossip.config import GossipConfig
from dkron_trio.gossip.messages import Addr, MemberState, Message, Packet
from dkron_trio.gossip.swim import SwimCore
from dkron_trio.gossip.swim_types import EventKind, Member, MemberEvent

Drop = Callable[[str, str, Packet], bool]
"""(source name, destination name, packet) -> lose it?"""


def addr(name: str) -> Addr:
    return (name, 7946)


@attrs.define
class Net:
    cores: dict[str, SwimCore]
    drop: Drop = lambda src, dst, p: False
    sent: list[tuple[str, str, Packet]] = attrs.field(factory=list)
    events: dict[str, list[MemberEvent]] = attrs.field(factory=dict)

    @classmethod
    def formed(cls, names: list[str], config: GossipConfig | None = None, seed: int = 1) -> Net:
        """Cores that already know each other (alive, incarnation 1)."""
        cfg = config or GossipConfig()
        rng = random.Random(seed)
        members = [Member(n, addr(n), {}, 1, MemberState.ALIVE) for n in names]
        cores = {n: SwimCore.create(n, addr(n), {}, cfg, rng, known=members) for n in names}
        net = cls(cores)
        net.collect()
        for evs in net.events.values():
            evs.clear()
        return net

    def collect(self) -> None:
        for name, core in self.cores.items():
            self.events.setdefault(name, []).extend(core.take_events())

    def deliver(self, rounds: int = 10) -> None:
        """Deliver datagrams, and the answers they cause, until quiet (at most `rounds`)."""
        by_addr = {addr(n): n for n in self.cores}
        for _ in range(rounds):
            flight = [(n, a, p) for n, c in self.cores.items() for a, p in c.take_outbox()]
            if not flight:
                break
            for src, to, packet in flight:
                dst = by_addr.get(to)
                self.sent.append((src, dst or to[0], packet))
                if dst is None or self.drop(src, dst, packet):
                    continue
                self.cores[dst].receive(addr(src), packet)
        self.collect()

    def step(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            for core in self.cores.values():
                core.tick()
            self.deliver()

    def kinds(self, observer: str, member: str) -> list[EventKind]:
        return [e.kind for e in self.events.get(observer, []) if e.member.name == member]

    def messages(self, src: str, dst: str, kind: type[Message]) -> list[Message]:
        return [m for s, d, p in self.sent if s == src and d == dst for m in p if type(m) is kind]
