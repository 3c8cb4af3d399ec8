"""The SWIM core's member records and the small pure helpers that work on them: random picks,
full-state chunking and memberlist's push-pull scaling."""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs

from dkron_trio.gossip.codec import PUSH_PULL_OVERHEAD, state_size
from dkron_trio.gossip.messages import Addr, MemberState, NodeState, PushPull, Tags
from dkron_trio.gossip.swim_types import Member, SwimRng

LIVE = (MemberState.ALIVE, MemberState.SUSPECT)
GONE = (MemberState.DEAD, MemberState.LEFT)


@attrs.define
class NodeRecord:
    """One member as this node knows it (mutable; snapshots go out as `Member`)."""

    name: str
    addr: Addr
    tags: Tags
    incarnation: int
    state: MemberState
    changed: int
    """Tick of the last state change."""

    def snapshot(self) -> Member:
        return Member(self.name, self.addr, dict(self.tags), self.incarnation, self.state)

    def as_state(self) -> NodeState:
        return NodeState(self.name, self.addr, self.incarnation, self.state, self.tags)


def pick(rng: SwimRng, nodes: list[NodeRecord], k: int) -> list[NodeRecord]:
    """Up to k distinct random members."""
    if k >= len(nodes):
        picked = list(nodes)
        rng.shuffle(picked)
        return picked
    chosen: list[int] = []
    while len(chosen) < k:
        i = rng.randrange(len(nodes))
        if i not in chosen:
            chosen.append(i)
    return [nodes[i] for i in chosen]


def state_chunks(nodes: Iterable[NodeRecord], room: int, *, reply: bool) -> list[PushPull]:
    """Our full state as push-pull messages of at most `room` bytes each (merging is per
    member, so each part is useful alone); only the first asks for a reply."""
    room -= PUSH_PULL_OVERHEAD
    out: list[PushPull] = []
    chunk: list[NodeState] = []
    used = 0
    for node in nodes:
        s = node.as_state()
        size = state_size(s)
        if chunk and used + size > room:
            out.append(PushPull(reply, tuple(chunk)))
            reply = False
            chunk, used = [], 0
        chunk.append(s)
        used += size
    out.append(PushPull(reply, tuple(chunk)))
    return out


def push_pull_scale(interval: int, members: int) -> int:
    """memberlist's pushPullScale: beyond 32 members, exchange less often."""
    if members <= 32:
        return interval
    return interval * (math.ceil(math.log2(members) - math.log2(32)) + 1)
