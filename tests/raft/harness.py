"""A tiny synchronous cluster around RaftCore for paper and transcript tests.

Each node has memory storage and a toy state machine (the list of applied payloads).
Messages go into one queue and are delivered when a test says so; partitions drop them
at delivery. Every action can be described as text for the golden transcripts.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import attrs

from dkron_trio.raft.codec import CodecError, decode_conf_change
from dkron_trio.raft.core import RaftCore
from dkron_trio.raft.storage import MemoryRaftStorage
from dkron_trio.raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    RaftConfig,
    ReadState,
    Ready,
)


def describe_entry(e: Entry) -> str:
    if e.type is EntryType.CONF_CHANGE:
        try:
            cc = decode_conf_change(e.data)
        except CodecError:
            return f"{e.term}/{e.index} conf:<malformed>"
        return f"{e.term}/{e.index} conf:{cc.type.name.lower()} {cc.node_id}"
    if not e.data:
        return f"{e.term}/{e.index}"
    return f"{e.term}/{e.index} {e.data.decode(errors='replace')!r}"


def describe_message(m: Message) -> str:
    parts = [f"{m.sender}->{m.to} {m.type.name} Term:{m.term}"]
    if m.type in (MessageType.APPEND, MessageType.VOTE, MessageType.PRE_VOTE):
        parts.append(f"Log:{m.log_term}/{m.index}")
    else:
        if m.index:
            parts.append(f"Index:{m.index}")
        if m.log_term:
            parts.append(f"LogTerm:{m.log_term}")
    if m.commit:
        parts.append(f"Commit:{m.commit}")
    if m.reject and m.type in (MessageType.APPEND_RESPONSE, MessageType.SNAPSHOT_RESPONSE):
        parts.append(f"Rejected(Hint:{m.reject_hint})")
    elif m.reject:
        parts.append("Rejected")
    elif m.reject_hint:
        parts.append(f"Hint:{m.reject_hint}")
    if m.context:
        parts.append(f"Ctx:{m.context.decode(errors='replace')!r}")
    if m.leader_transfer:
        parts.append("Transfer")
    if m.entries:
        parts.append("Entries:[" + ", ".join(describe_entry(e) for e in m.entries) + "]")
    if m.snapshot is not None:
        c = m.snapshot
        meta = c.meta
        voters = ",".join(map(str, sorted(meta.conf_state.voters)))
        learners = ",".join(map(str, sorted(meta.conf_state.learners)))
        done = " Done" if c.done else ""
        parts.append(
            f"Snapshot:{meta.term}/{meta.index} Voters:({voters}) Learners:({learners}) "
            f"Offset:{c.offset} Len:{len(c.data)}{done}"
        )
    return " ".join(parts)


def describe_ready(node_id: int, rd: Ready) -> list[str]:
    out = [f"> {node_id} handling Ready"]
    if rd.soft_state is not None:
        out.append(f"  Lead:{rd.soft_state.leader_id} State:{rd.soft_state.role.value}")
    if rd.hard_state is not None:
        hs = rd.hard_state
        out.append(f"  HardState Term:{hs.term} Vote:{hs.vote} Commit:{hs.commit}")
    if rd.snapshot is not None:
        meta = rd.snapshot.meta
        out.append(f"  Snapshot {meta.term}/{meta.index} Len:{len(rd.snapshot.data)}")
    if rd.entries:
        out.append("  Entries:")
        out.extend(f"    {describe_entry(e)}" for e in rd.entries)
    if rd.compaction is not None:
        c = rd.compaction
        out.append(
            f"  Compaction: snapshot {c.snapshot.meta.term}/{c.snapshot.meta.index} "
            f"compact-to {c.compact_index}"
        )
    if rd.messages:
        out.append("  Messages:")
        out.extend(f"    {describe_message(m)}" for m in rd.messages)
    if rd.committed_entries:
        out.append("  Committed:")
        out.extend(f"    {describe_entry(e)}" for e in rd.committed_entries)
    if rd.read_states:
        out.append("  ReadStates:")
        out.extend(f"    {r.index} {r.ctx.decode(errors='replace')!r}" for r in rd.read_states)
    if rd.must_sync:
        out.append("  MustSync")
    return out


@attrs.define
class Node:
    core: RaftCore
    storage: MemoryRaftStorage
    config: RaftConfig
    rng: random.Random
    applied: list[bytes] = attrs.Factory(list)
    read_states: list[ReadState] = attrs.Factory(list)


def encode_state(applied: list[bytes]) -> bytes:
    return b"\n".join(applied)


def decode_state(data: bytes) -> list[bytes]:
    return data.split(b"\n") if data else []


@attrs.define
class Cluster:
    """Nodes plus an in-order message queue; `log` collects the transcript."""

    seed: int = 0
    nodes: dict[int, Node] = attrs.Factory(dict)
    queue: list[Message] = attrs.Factory(list)
    blocked: set[tuple[int, int]] = attrs.Factory(set)
    down: set[int] = attrs.Factory(set)
    log: list[str] = attrs.Factory(list)
    verbose: bool = True

    def add_node(
        self,
        node_id: int,
        conf: ConfState,
        config: RaftConfig | None = None,
    ) -> Node:
        storage = MemoryRaftStorage(conf)
        cfg = config or RaftConfig()
        rng = random.Random(self.seed * 1000 + node_id)
        node = Node(RaftCore(node_id, storage, cfg, rng), storage, cfg, rng)
        self.nodes[node_id] = node
        return node

    def add_nodes(
        self,
        count: int,
        config: RaftConfig | None = None,
        voters: Iterable[int] | None = None,
        learners: Iterable[int] = (),
    ) -> list[int]:
        start = max(self.nodes, default=0) + 1
        ids = list(range(start, start + count))
        conf = ConfState(frozenset(ids if voters is None else voters), frozenset(learners))
        for i in ids:
            self.add_node(i, conf, config)
        return ids

    def core(self, node_id: int) -> RaftCore:
        return self.nodes[node_id].core

    # -- driving --------------------------------------------------------------------------

    def emit(self, lines: Iterable[str]) -> None:
        if self.verbose:
            self.log.extend(lines)

    def handle_ready(self, node_id: int) -> bool:
        node = self.nodes[node_id]
        if node_id in self.down or not node.core.has_ready():
            return False
        rd = node.core.ready()
        self.emit(describe_ready(node_id, rd))
        node.storage.save(rd)
        self.queue.extend(m for m in rd.messages if m.to not in self.down)
        if rd.snapshot is not None:
            node.applied = decode_state(rd.snapshot.data)
        for e in rd.committed_entries:
            if e.type is EntryType.NORMAL and e.data:
                node.applied.append(e.data)
        node.read_states.extend(rd.read_states)
        node.core.advance(rd)
        return True

    def deliver(self, to: int, *, drop: bool = False) -> bool:
        msgs = [m for m in self.queue if m.to == to]
        if not msgs:
            return False
        self.queue = [m for m in self.queue if m.to != to]
        if to in self.down or drop:
            self.emit([f"> {to} dropping messages"] + [f"  {describe_message(m)}" for m in msgs])
            return True
        self.emit([f"> {to} receiving messages"])
        for m in msgs:
            if (m.sender, m.to) in self.blocked or m.sender in self.down:
                self.emit([f"  {describe_message(m)} DROPPED"])
                continue
            self.emit([f"  {describe_message(m)}"])
            self.nodes[to].core.step(m)
        return True

    def step_round(self, ids: Iterable[int] | None = None) -> bool:
        """Handle every pending Ready, then deliver every queued message, once."""
        targets = sorted(self.nodes if ids is None else ids)
        progressed = False
        for i in targets:
            progressed |= self.handle_ready(i)
        for i in targets:
            progressed |= self.deliver(i)
        return progressed

    def stabilize(self, ids: Iterable[int] | None = None) -> None:
        for _ in range(10_000):
            if not self.step_round(ids):
                return
        raise AssertionError("cluster did not stabilize")

    def tick(self, node_id: int, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[node_id].core.tick()

    def tick_all(self, n: int = 1) -> None:
        for _ in range(n):
            for i in sorted(self.nodes):
                if i not in self.down:
                    self.nodes[i].core.tick()

    def partition(self, *groups: Iterable[int]) -> None:
        """Only nodes in the same group talk; nodes in no group are cut off from all."""
        self.blocked.clear()
        group_of = {n: gi for gi, g in enumerate(groups) for n in g}
        for a in self.nodes:
            for b in self.nodes:
                if a != b and (a not in group_of or group_of.get(a) != group_of.get(b)):
                    self.blocked.add((a, b))

    def isolate(self, node_id: int) -> None:
        for other in self.nodes:
            if other != node_id:
                self.blocked.add((node_id, other))
                self.blocked.add((other, node_id))

    def heal(self) -> None:
        self.blocked.clear()

    def crash(self, node_id: int) -> None:
        """Stop a node: whatever it has not persisted (its pending Ready) is lost, and so
        are messages on their way to it."""
        self.down.add(node_id)
        self.queue = [m for m in self.queue if m.to != node_id]

    def restart(self, node_id: int) -> None:
        """Reopen a node on its storage; its state machine restarts from the snapshot."""
        node = self.nodes[node_id]
        self.down.discard(node_id)
        snap = node.storage.snapshot()
        node.applied = decode_state(snap.data)
        node.read_states = []
        node.core = RaftCore(node_id, node.storage, node.config, node.rng)

    def leader(self) -> int:
        leaders = [
            i for i, n in self.nodes.items() if i not in self.down and n.core.role.value == "leader"
        ]
        if not leaders:
            return 0
        return max(leaders, key=lambda i: self.nodes[i].core.term)

    def elect(self, node_id: int) -> None:
        self.core(node_id).campaign()
        self.stabilize()
