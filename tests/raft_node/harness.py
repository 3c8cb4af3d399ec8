"""A cluster of RaftNodes on a MemoryNetwork, with storage, transport and state machine
wrappers that check the Ready contract's order as it happens."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

import attrs
import trio

from dkron_trio.raft.node import NodeConfig, RaftNode
from dkron_trio.raft.node_storage import MemoryNodeStorage, NodeStorage
from dkron_trio.raft.storage import RaftStorage
from dkron_trio.raft.transport import MemoryNetwork, MemoryTransport
from dkron_trio.raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
)

MT = MessageType
VOTERS = ConfState(frozenset({1, 2, 3}))
TICK = NodeConfig().tick_length


class OrderViolation(AssertionError):
    """The shell broke the Ready contract."""


@attrs.define(eq=False)
class Durable:
    """What one node has made durable so far, as the wrappers saw it (persist calls)."""

    terms: dict[int, int] = attrs.Factory(dict)
    hard_state: HardState = attrs.Factory(HardState)
    persists: int = 0
    covered: int = 0
    """The index of the last durable snapshot: every entry up to it is covered."""

    def record(self, ready: Ready) -> None:
        self.persists += 1
        if ready.snapshot is not None:
            self.terms = {ready.snapshot.meta.index: ready.snapshot.meta.term}
            self.covered = ready.snapshot.meta.index
        if ready.entries:
            first = ready.entries[0].index
            self.terms = {i: t for i, t in self.terms.items() if i < first}
            self.terms.update((e.index, e.term) for e in ready.entries)
        if ready.hard_state is not None:
            self.hard_state = ready.hard_state

    def holds(self, index: int, term: int) -> bool:
        return self.terms.get(index) == term or index <= self.covered


@attrs.define(eq=False)
class WatchedStorage:
    """A NodeStorage that records each persist (in `events` and `durable`)."""

    inner: NodeStorage
    durable: Durable
    events: list[str]

    @classmethod
    def around(cls, inner: NodeStorage, events: list[str]) -> WatchedStorage:
        durable = Durable()
        snap = inner.snapshot().meta
        durable.terms = {snap.index: snap.term}
        durable.terms.update((e.index, e.term) for e in _all_entries(inner))
        durable.hard_state = inner.initial_state()[0]
        return cls(inner, durable, events)

    def persist(self, ready: Ready) -> None:
        self.inner.persist(ready)
        self.durable.record(ready)
        self.events.append("persist")

    def install(self, ready: Ready) -> None:
        self.inner.install(ready)

    def stage_snapshot(self, index: int, data: bytes) -> None:
        self.inner.stage_snapshot(index, data)

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.inner.initial_state()

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        return self.inner.entries(lo, hi, max_size)

    def term(self, index: int) -> int:
        return self.inner.term(index)

    def first_index(self) -> int:
        return self.inner.first_index()

    def last_index(self) -> int:
        return self.inner.last_index()

    def snapshot(self) -> Snapshot:
        return self.inner.snapshot()


def _all_entries(storage: RaftStorage) -> list[Entry]:
    return storage.entries(storage.first_index(), storage.last_index() + 1)


@attrs.define(eq=False)
class WatchedTransport:
    """Checks, as each message leaves, that what it depends on is durable on the sender."""

    inner: MemoryTransport
    durable: Durable
    events: list[str]

    def send(self, messages: Sequence[Message]) -> None:
        for msg in messages:
            self._check(msg)
        self.events.append("send")
        self.inner.send(messages)

    @property
    def inbound(self) -> trio.abc.ReceiveChannel[Message]:
        return self.inner.inbound

    def _check(self, msg: Message) -> None:
        hs = self.durable.hard_state
        if msg.type not in (MT.PRE_VOTE, MT.PRE_VOTE_RESPONSE) and msg.term > hs.term:
            raise OrderViolation(f"{msg.type.name} of term {msg.term} sent, durable {hs.term}")
        if msg.type is MT.VOTE_RESPONSE and not msg.reject and hs.vote != msg.to:
            raise OrderViolation(f"vote for {msg.to} sent before it was durable")
        for e in msg.entries:
            if not self.durable.holds(e.index, e.term):
                raise OrderViolation(f"entry {e.index} sent before it was durable")
        accepted = msg.type is MT.APPEND_RESPONSE and not msg.reject
        if accepted and msg.index > max(self.durable.terms, default=0):
            raise OrderViolation(f"append of {msg.index} acknowledged before it was durable")


@attrs.define(eq=False)
class KvMachine:
    """A state machine that keeps the commands it applied; an entry's result is its index.
    Its image (for snapshots) is the commands joined by newlines."""

    durable: Durable | None = None
    commands: list[bytes] = attrs.Factory(list)
    applied: list[Entry] = attrs.Factory(list)
    restored: list[SnapshotMeta] = attrs.Factory(list)
    events: list[str] = attrs.Factory(list)
    apply_delay: float = 0.0
    """Mock seconds each `apply` call takes (a slow state machine)."""
    calls: list[list[bytes]] = attrs.Factory(list)
    """The commands of each `apply` call, once it has begun."""

    async def apply(self, entries: Sequence[Entry]) -> Sequence[object]:
        self.calls.append([e.data for e in entries if e.data and e.type is EntryType.NORMAL])
        if self.durable is not None:
            for e in entries:
                if not self.durable.holds(e.index, e.term):
                    raise OrderViolation(f"entry {e.index} applied before it was durable")
        if self.apply_delay:
            await trio.sleep(self.apply_delay)
        self.events.append("apply")
        self.applied.extend(entries)
        self.commands.extend(e.data for e in entries if e.data and e.type is EntryType.NORMAL)
        return [e.index for e in entries]

    async def restore(self, snapshot: Snapshot) -> None:
        self.events.append("restore")
        self.restored.append(snapshot.meta)
        self.commands = [c for c in snapshot.data.split(b"\n") if c]

    def image(self) -> bytes:
        return b"\n".join(self.commands)


@attrs.define(eq=False)
class InlineOffload:
    """Runs persist on the event loop after `delay` seconds of (mock) time: deterministic
    under MockClock, where a real thread would let the clock jump while it runs."""

    delay: float = 0.0

    async def __call__(self, persist: Callable[[Ready], None], ready: Ready) -> None:
        if self.delay:
            await trio.sleep(self.delay)
        persist(ready)


@attrs.define(eq=False)
class Member:
    node: RaftNode
    storage: WatchedStorage
    machine: KvMachine
    offload: InlineOffload
    events: list[str]
    scope: trio.CancelScope
    stopped: trio.Event


@attrs.define(eq=False)
class Cluster:
    nursery: trio.Nursery
    network: MemoryNetwork = attrs.Factory(MemoryNetwork)
    members: dict[int, Member] = attrs.Factory(dict)
    config: NodeConfig = attrs.Factory(NodeConfig)

    async def start(
        self, node_id: int, storage: NodeStorage | None = None, *, delay: float = 0.0
    ) -> Member:
        events: list[str] = []
        watched = WatchedStorage.around(
            MemoryNodeStorage(VOTERS) if storage is None else storage, events
        )
        machine = KvMachine(watched.durable, events=events)
        offload = InlineOffload(delay)
        transport = WatchedTransport(self.network.transport(node_id), watched.durable, events)
        node = RaftNode(
            node_id,
            watched,
            transport,
            machine,
            self.config,
            random.Random(node_id * 7919 + len(self.members)),
            offload=offload,
        )
        scope = trio.CancelScope()
        member = Member(node, watched, machine, offload, events, scope, trio.Event())

        async def run(task_status: trio.TaskStatus[None]) -> None:
            try:
                with scope:
                    await node.run(task_status=task_status)
            finally:
                member.stopped.set()

        await self.nursery.start(run)
        self.members[node_id] = member
        return member

    def stop(self, node_id: int) -> Member:
        member = self.members.pop(node_id)
        member.scope.cancel()
        self.network.remove(node_id)
        return member

    def leaders(self) -> list[RaftNode]:
        return [m.node for m in self.members.values() if m.node.status().role is Role.LEADER]

    async def leader(self, *, among: Sequence[int] | None = None) -> RaftNode:
        """The single leader the given members agree on, once there is one."""
        ids = list(among or self.members)

        def agreed() -> bool:
            nodes = [self.members[i].node for i in ids]
            leads = [n for n in nodes if n.is_leader]
            return len(leads) == 1 and all(n.leader_id == leads[0].node_id for n in nodes)

        await eventually(agreed)
        return next(self.members[i].node for i in ids if self.members[i].node.is_leader)


DEADLINE = 60.0
"""Mock seconds any cluster condition in these tests may take to hold."""


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait until a condition over several nodes holds, or fail after DEADLINE. Checked once
    per tick of mock time: some changes (a leader stepping down on a tick) show up in no
    storage, transport or machine call a wrapper could signal, and under MockClock the
    polling costs no real time and stays deterministic."""
    with trio.fail_after(DEADLINE):
        while not predicate():  # noqa: ASYNC110 - see docstring
            await trio.sleep(TICK)
