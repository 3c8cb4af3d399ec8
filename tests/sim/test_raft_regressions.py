"""Minimal reproductions of Raft core bugs the simulator found (each names the seed/schedule
that first showed it). A plain synchronous harness routes messages between cores by hand."""

from __future__ import annotations

import random
from collections.abc import Callable

from dkron_trio.raft.core import RaftCore
from dkron_trio.raft.storage import MemoryRaftStorage
from dkron_trio.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Message,
    MessageType,
    RaftConfig,
    Role,
)

Drop = Callable[[Message], bool]


class Harness:
    """Cores over memory storages; `settle` runs Ready cycles and delivers until quiet."""

    def __init__(self, voters: int, config: RaftConfig) -> None:
        conf = ConfState(voters=frozenset(range(1, voters + 1)))
        self.config = config
        self.storages: dict[int, MemoryRaftStorage] = {}
        self.cores: dict[int, RaftCore] = {}
        for node in range(1, voters + 1):
            self.add(node, conf)

    def add(self, node: int, conf: ConfState) -> None:
        self.storages[node] = MemoryRaftStorage(conf)
        self.cores[node] = RaftCore(node, self.storages[node], self.config, random.Random(node))

    def settle(self, drop: Drop = lambda _: False) -> None:
        for _ in range(1_000):
            inflight: list[Message] = []
            for node, core in self.cores.items():
                while core.has_ready():
                    ready = core.ready()
                    self.storages[node].save(ready)
                    inflight.extend(m for m in ready.messages if not drop(m))
                    core.advance(ready)
            if not inflight:
                return
            for msg in inflight:
                if msg.to in self.cores:
                    self.cores[msg.to].step(msg)
        raise AssertionError("cluster did not settle")

    def tick(self, times: int, drop: Drop = lambda _: False) -> None:
        for _ in range(times):
            for core in self.cores.values():
                core.tick()
            self.settle(drop)

    def elect(self, node: int) -> RaftCore:
        self.cores[node].campaign()
        self.settle()
        leader = self.cores[node]
        assert leader.role is Role.LEADER
        return leader


def test_follower_that_lost_a_full_inflight_window_catches_up() -> None:
    """Found by random_schedule seed 2 (`fuzz/raft_sim.py --seed 2`): a follower crashed while
    the leader had a full window of APPENDs in flight to it; after its restart the leader kept
    it in REPLICATE with the window full, heartbeats never freed a slot, and it never caught
    up. etcd frees one inflight slot per heartbeat response for exactly this case."""
    h = Harness(3, RaftConfig(max_inflight_msgs=2))
    leader = h.elect(1)
    to_3: Drop = lambda m: m.to == 3  # noqa: E731
    for i in range(6):
        leader.propose(b"cmd%d" % i)
        h.settle(drop=to_3)
    h.tick(30)
    assert h.cores[3].last_index == leader.last_index


def test_joining_node_learns_the_initial_membership() -> None:
    """Found by random_schedule seed 35: a node added with an empty disk replayed the log from
    index 1 while the initial membership lived only in the bootstrap snapshot at index 0, so it
    computed its configuration from the conf changes alone. Promoted, it believed it was the
    only voter, elected itself and committed entries on its own (leader completeness broke)."""
    h = Harness(3, RaftConfig())
    leader = h.elect(1)
    h.add(4, ConfState())
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    h.settle()
    h.tick(3)
    leader.propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    h.settle()
    h.tick(3)
    assert leader.conf_state == ConfState(voters=frozenset({1, 2, 3, 4}))
    assert h.cores[4].conf_state == leader.conf_state


def test_follower_acking_a_superseded_snapshot_gets_the_newer_one() -> None:
    """Found by random_schedule seed 25 (`fuzz/raft_sim.py --seed 25`): a follower installed
    the snapshot it was sent, but meanwhile the leader had compacted past it. The leader kept
    the follower in SNAPSHOT state and resent the stale snapshot forever instead of sending
    its current one, so the follower never caught up."""
    h = Harness(3, RaftConfig(compaction_keep_entries=0))
    leader = h.elect(1)
    held: list[Message] = []

    def cut_3(m: Message) -> bool:
        return 3 in (m.to, m.sender)

    def hold_snapshot(m: Message) -> bool:
        if m.to == 3 and m.type is MessageType.SNAPSHOT:
            held.append(m)
            return True
        return False

    for i in range(4):
        leader.propose(b"a%d" % i)
        h.settle(drop=cut_3)
    leader.compact(leader.applied, b"image-1")
    h.settle(drop=cut_3)
    h.tick(2, drop=hold_snapshot)
    assert held, "the leader should have started a snapshot for node 3"
    for i in range(4):
        leader.propose(b"b%d" % i)
        h.settle(drop=cut_3)
    leader.compact(leader.applied, b"image-2")
    h.settle(drop=cut_3)
    h.cores[3].step(held[0])
    h.settle()
    h.tick(30)
    assert h.cores[3].last_index == leader.last_index
