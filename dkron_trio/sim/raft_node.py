"""One simulated Raft server: a RaftCore on a SimDisk with a key-value state machine, driven
through the Ready contract exactly as the real shell does (persist, fsync if asked, send,
apply, advance), with the safety checker watching every Ready.

Client calls arrive as `submit_write` / `submit_read` and complete through a callback: with
the command's output, or with None when the operation certainly took no effect.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from dkron_trio.raft.core import RaftCore
from dkron_trio.raft.errors import NotLeader, ProposalDropped
from dkron_trio.raft.types import EntryType, Message, RaftConfig, Ready
from dkron_trio.sim.disk import SimDisk
from dkron_trio.sim.kv import KvOutput
from dkron_trio.sim.kv_machine import KvCommand, KvStateMachine
from dkron_trio.sim.network import SimRng
from dkron_trio.sim.safety import RaftSafetyChecker


@attrs.define
class RunStats:
    """Counters the nodes and the cluster bump during a run (to show what a run exercised)."""

    crashes: int = 0
    lossy_crashes: int = 0
    snapshots_installed: int = 0
    compactions: int = 0
    conf_changes_applied: int = 0
    transfers: int = 0


Completion = Callable[[int, KvOutput | None, int], None]
"""(client operation handle, output or None for "took no effect", now)."""


@attrs.define
class RaftSimNode:
    node_id: int
    _core: RaftCore
    _disk: SimDisk
    _kv: KvStateMachine
    _checker: RaftSafetyChecker
    _complete: Completion
    _trace: Callable[..., None]
    _stats: RunStats
    _snapshot_every: int
    _last_image: int
    _outbox: list[tuple[int, Message]] = attrs.field(factory=list)
    _proposals: dict[int, tuple[int, bytes]] = attrs.field(factory=dict)
    """log index -> (handle, the command's bytes) of writes proposed here."""
    _reads: dict[bytes, tuple[int, str]] = attrs.field(factory=dict)
    """ReadIndex context -> (handle, key) awaiting a read state."""
    _read_waits: list[tuple[int, int, str]] = attrs.field(factory=list)
    """(read index, handle, key) awaiting apply."""
    _crash_at_sync: Callable[[], None] | None = None

    @classmethod
    def boot(
        cls,
        node_id: int,
        disk: SimDisk,
        config: RaftConfig,
        rng: SimRng,
        *,
        checker: RaftSafetyChecker,
        complete: Completion,
        trace: Callable[..., None],
        snapshot_every: int,
        stats: RunStats,
        now: int,
    ) -> RaftSimNode:
        """Start (or restart) a node from what its disk holds."""
        storage = disk.storage
        snapshot = storage.snapshot()
        kv = KvStateMachine.restore(snapshot.data, snapshot.meta.index)
        core = RaftCore(node_id, storage, config, rng, applied=snapshot.meta.index)
        checker.on_start(node_id, storage, storage.initial_state()[0], now)
        return cls(
            node_id,
            core,
            disk,
            kv,
            checker,
            complete,
            trace,
            stats,
            snapshot_every,
            snapshot.meta.index,
        )

    @property
    def core(self) -> RaftCore:
        return self._core

    @property
    def kv(self) -> KvStateMachine:
        return self._kv

    # -- SimNode --------------------------------------------------------------------------

    def tick(self, now: int) -> None:
        self._core.tick()

    def receive(self, src: int, msg: Message, now: int) -> None:
        self._core.step(msg)

    def take_outbox(self, now: int) -> list[tuple[int, Message]]:
        """Handle the Ready the last inputs produced (one per batch), then hand over sends."""
        self._process(now)
        out, self._outbox = self._outbox, []
        return out

    # -- client calls (the caller then flushes the node through the Simulation) -------

    def submit_write(self, handle: int, command: KvCommand, now: int) -> int:
        """Propose a write; returns the leader this node knows (0 if none)."""
        data = command.encode()
        try:
            index = self._core.propose(data)
        except NotLeader as e:
            self._complete(handle, None, now)
            return e.leader_id
        except ProposalDropped:
            self._complete(handle, None, now)
            return self.node_id
        self._proposals[index] = (handle, data)
        return self.node_id

    def submit_read(self, handle: int, key: str, ctx: bytes, now: int) -> int:
        """Start a linearizable read (ReadIndex); returns the leader this node knows."""
        try:
            self._core.read_index(ctx)
        except NotLeader as e:
            self._complete(handle, None, now)
            return e.leader_id
        self._reads[ctx] = (handle, key)
        return self._core.leader_id

    def crash_at_next_sync(self, crash: Callable[[], None] | None) -> None:
        """Arm (or with None, disarm) a power loss in the middle of the next fsync: the Ready
        is written but not synced, its messages never leave, and `crash` takes the node down."""
        self._crash_at_sync = crash

    # -- the Ready loop -------------------------------------------------------------------

    def _process(self, now: int) -> None:
        core = self._core
        while core.has_ready():
            ready = core.ready()
            role, term = core.role, core.term
            storage = self._disk.storage
            self._checker.before_persist(
                self.node_id, ready, storage, role=role, term=term, now=now
            )
            self._disk.persist(ready)
            if ready.must_sync:
                if self._crash_at_sync is not None:
                    self._crash_at_sync()
                    return
                self._disk.sync()
            self._checker.after_persist(self.node_id, ready, storage, role=role, term=term, now=now)
            for msg in ready.messages:
                self._outbox.append((msg.to, msg))
            self._apply(ready, term, now)
            core.advance(ready)
            self._trace_ready(ready)
            self._maybe_compact(now)

    def _apply(self, ready: Ready, term: int, now: int) -> None:
        if ready.snapshot is not None:
            image = ready.snapshot.data
            index = ready.snapshot.meta.index
            self._checker.on_image(self.node_id, index, image, now)
            self._kv = KvStateMachine.restore(image, index)
            self._last_image = index
            self._stats.snapshots_installed += 1
            for stale in [i for i in self._proposals if i <= index]:
                del self._proposals[stale]
        for entry in ready.committed_entries:
            self._checker.on_apply(self.node_id, entry, term, now)
            output = None
            if entry.type is EntryType.NORMAL:
                output = self._kv.apply(entry.index, entry.data)
            else:
                self._kv.skip(entry.index)
                self._stats.conf_changes_applied += 1
            proposal = self._proposals.pop(entry.index, None)
            if proposal is not None:
                handle, data = proposal
                self._complete(handle, output if data == entry.data else None, now)
        for state in ready.read_states:
            pending = self._reads.pop(state.ctx, None)
            if pending is not None:
                self._read_waits.append((state.index, *pending))
        if self._read_waits:
            applied = self._kv.applied
            waiting = []
            for index, handle, key in self._read_waits:
                if index <= applied:
                    self._complete(handle, KvOutput(value=self._kv.read(key)), now)
                else:
                    waiting.append((index, handle, key))
            self._read_waits = waiting

    def _maybe_compact(self, now: int) -> None:
        applied = self._kv.applied
        if self._snapshot_every and applied - self._last_image >= self._snapshot_every:
            image = self._kv.snapshot()
            self._checker.on_image(self.node_id, applied, image, now)
            self._core.compact(applied, image)
            self._last_image = applied
            self._stats.compactions += 1

    def _trace_ready(self, ready: Ready) -> None:
        hs = ready.hard_state
        self._trace(
            self.node_id,
            -1 if hs is None else hs.term,
            -1 if hs is None else hs.vote,
            -1 if hs is None else hs.commit,
            len(ready.entries),
            len(ready.messages),
            self._kv.applied,
        )
