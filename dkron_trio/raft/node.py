"""RaftNode: the Trio shell around RaftCore.

Four tasks share one core: a tick loop (`trio.sleep` per tick), an inbound loop (transport
-> `core.step`), a driver loop that persists each Ready (on a worker thread; the fsync
comes from SQLite's synchronous=FULL), sends its messages and hands its committed entries
to an apply loop, which applies them to the state machine in order. The core accepts ticks,
messages and proposals while a Ready is being persisted, so everything that arrives during
one fsync lands in the next Ready and shares its fsync (group commit): back-pressure comes
for free from the disk's speed.

Applying apart from persisting lets the two overlap: the log's fsync and the state
machine's writes are different files on different threads, and a leader keeps replicating
(so commits keep coming) while a large batch applies. Entries committed meanwhile queue
up, at most `apply_backlog` Readies' worth (then the driver waits), and are applied
together. A snapshot from the leader waits for the queue to drain before it replaces the
machine's state.

A slow disk delays only this node's sends. On a follower that is harmless: it keeps
stepping the leader's heartbeats (so it never campaigns) and merely acknowledges late. On
the leader, heartbeats wait for the fsync in progress; as long as one persist + apply takes
less than the election timeout (10 ticks = 1 s by default), followers keep hearing from
it and, with check-quorum's leader stickiness, refuse to vote for anyone else. A leader
whose disk stalls for longer than that is, by design, replaced: the core cannot tell a
stalled leader from a dead one.

Callers wait on outcomes: `propose` until the entry is applied, `read_index` until a
linearizable read point is applied here, `barrier` until the current term's first entry is
applied; leadership changes are published to `leadership()` subscribers.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import attrs
import outcome
import trio

from dkron_trio.logs import get_logger
from dkron_trio.raft.core import RaftCore
from dkron_trio.raft.errors import NotLeader, ProposalDropped, RaftError
from dkron_trio.raft.node_storage import NodeStorage, needs_persist
from dkron_trio.raft.status import Status
from dkron_trio.raft.transport import Transport
from dkron_trio.raft.types import (
    NONE,
    ConfChange,
    Entry,
    RaftConfig,
    Ready,
    Role,
    Snapshot,
)

log = get_logger(__name__)


class LeadershipLost(NotLeader):
    """This node stopped leading while a request waited. For a proposal the outcome is
    unknown: the entry may still be committed by the next leader, so a retry must be
    idempotent."""


class NodeStopped(RaftError):
    """The node is not running (not started yet, or its run() has ended)."""


class StateMachine(Protocol):
    """The replicated application the node applies committed entries to."""

    async def apply(self, entries: Sequence[Entry]) -> Sequence[object]:
        """Apply committed entries in log order and return one result per entry. Every
        entry is passed, including barriers (empty data) and membership changes, so the
        machine can record the last applied index with each batch."""
        ...

    async def restore(self, snapshot: Snapshot) -> None:
        """Replace the machine's state with a snapshot's image (sent by the leader)."""
        ...


class Offload(Protocol):
    """Runs a storage's blocking persist step off the event loop."""

    async def __call__(self, persist: Callable[[Ready], None], ready: Ready) -> None: ...


@attrs.define(eq=False)
class ThreadOffload:
    """The default Offload: one worker thread at a time (CapacityLimiter(1)), so persists
    never overlap and keep their order. A persist already running when the caller is
    cancelled completes first (its transaction is never cut in half)."""

    _limiter: trio.CapacityLimiter = attrs.Factory(lambda: trio.CapacityLimiter(1))

    async def __call__(self, persist: Callable[[Ready], None], ready: Ready) -> None:
        await trio.to_thread.run_sync(persist, ready, limiter=self._limiter)


class ConfigError(ValueError):
    """An invalid NodeConfig; the message names the field."""


@attrs.frozen
class NodeConfig:
    """The shell's settings; all of them in one place. Ticks last `tick_seconds` times
    `raft_multiplier`, which therefore scales every Raft timeout (like Dkron's flag)."""

    raft: RaftConfig = attrs.Factory(RaftConfig)
    tick_seconds: float = 0.1
    raft_multiplier: int = 1
    busy_heartbeat_timeouts: int = 3
    """Election timeouts (base) during which one persist or apply call keeps sending
    heartbeats and their replies (`RaftCore.take_heartbeats`): a slow batch or a slow write
    (a snapshot's image) keeps its leader, a disk or state machine stuck for longer than
    that still loses it."""
    apply_backlog: int = 4
    """Readies whose committed entries may wait to be applied before the driver waits for
    the state machine (each holds at most `RaftConfig.max_committed_size_per_ready`)."""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.tick_seconds, int | float) or not (
            math.isfinite(self.tick_seconds) and self.tick_seconds > 0
        ):
            raise ConfigError(f"tick_seconds: must be a positive number, got {self.tick_seconds}")
        multiplier = self.raft_multiplier
        if isinstance(multiplier, bool) or not isinstance(multiplier, int) or multiplier < 1:
            raise ConfigError(f"raft_multiplier: must be an integer >= 1, got {multiplier!r}")
        timeouts = self.busy_heartbeat_timeouts
        if isinstance(timeouts, bool) or not isinstance(timeouts, int) or timeouts < 0:
            raise ConfigError(f"busy_heartbeat_timeouts: must be an integer >= 0, got {timeouts!r}")
        backlog = self.apply_backlog
        if isinstance(backlog, bool) or not isinstance(backlog, int) or backlog < 1:
            raise ConfigError(f"apply_backlog: must be an integer >= 1, got {backlog!r}")

    @property
    def tick_length(self) -> float:
        return self.tick_seconds * self.raft_multiplier

    @property
    def busy_heartbeat_seconds(self) -> float:
        return self.busy_heartbeat_timeouts * self.raft.election_ticks * self.tick_length


@attrs.frozen
class LeadershipChange:
    """Who leads in `term` as this node sees it; `is_leader` when it is this node."""

    term: int
    leader_id: int
    is_leader: bool


@attrs.define(eq=False)
class _Waiter:
    """One caller waiting for an outcome (a proposal's result, a read index)."""

    term: int
    done: trio.Event = attrs.Factory(trio.Event)
    result: outcome.Outcome[object] | None = None

    def finish(self, result: outcome.Outcome[object]) -> None:
        if self.result is None:
            self.result = result
            self.done.set()

    async def wait(self) -> object:
        await self.done.wait()
        assert self.result is not None
        return self.result.unwrap()


@attrs.define(eq=False)
class RaftNode:
    """Create with `RaftNode(node_id, storage, transport, machine)`, then
    `await nursery.start(node.run)`."""

    _id: int
    _storage: NodeStorage
    _transport: Transport
    _machine: StateMachine
    _config: NodeConfig = attrs.Factory(NodeConfig)
    _rng: random.Random = attrs.Factory(random.Random)
    _applied: int = 0
    """Index the machine already reflects when the node is opened (it replays from there).
    The machine must reflect at least the storage's snapshot: the core never replays
    below it."""
    _offload: Offload = attrs.Factory(ThreadOffload)
    _core: RaftCore = attrs.field(init=False)
    _wakeup: trio.Event = attrs.field(init=False, factory=trio.Event)
    _changed: trio.Event = attrs.field(init=False, factory=trio.Event)
    """Set (and replaced) whenever applied, leadership or running state changes."""
    _proposals: dict[int, _Waiter] = attrs.field(init=False, factory=dict)
    _reads: dict[bytes, _Waiter] = attrs.field(init=False, factory=dict)
    _read_seq: int = attrs.field(init=False, default=0)
    _read_prefix: bytes = attrs.field(init=False, default=b"")
    """Makes ReadIndex contexts unique across restarts of the same node id."""
    _leadership: LeadershipChange = attrs.field(init=False)
    _leadership_version: int = attrs.field(init=False, default=0)
    _applied_term: int = attrs.field(init=False, default=0)
    _running: bool = attrs.field(init=False, default=False)
    _stopped: bool = attrs.field(init=False, default=False)
    _busy_since: float | None = attrs.field(init=False, default=None)
    """Trio time at which the driver began waiting for the disk or the state machine (None:
    it is not waiting)."""
    _to_apply: list[Sequence[Entry]] = attrs.field(init=False, factory=list)
    """Committed entries handed out by the core, one batch per Ready, not applied yet."""
    _apply_wakeup: trio.Event = attrs.field(init=False, factory=trio.Event)
    _applying_since: float | None = attrs.field(init=False, default=None)
    """Trio time at which the state machine's apply call in progress began."""

    def __attrs_post_init__(self) -> None:
        self._core = RaftCore(
            self._id, self._storage, self._config.raft, self._rng, applied=self._applied
        )
        self._leadership = LeadershipChange(self._core.term, NONE, False)
        self._read_prefix = f"{self._id}:{self._rng.getrandbits(64):x}:".encode()

    # -- accessors ------------------------------------------------------------------------

    @property
    def node_id(self) -> int:
        return self._id

    @property
    def is_leader(self) -> bool:
        return self._core.role is Role.LEADER

    @property
    def leader_id(self) -> int:
        return self._core.leader_id

    @property
    def term(self) -> int:
        return self._core.term

    @property
    def applied(self) -> int:
        return self._core.applied

    def status(self) -> Status:
        return self._core.status()

    # -- running --------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Tick, receive and drive Ready until cancelled; then fail every waiting caller
        with NodeStopped. A persist already on the worker thread finishes first (its
        transaction either commits or rolls back; it is never torn by cancellation)."""
        if self._running or self._stopped:
            raise NodeStopped("a RaftNode runs once")
        self._running = True
        log.info(
            "raft node starting",
            node=self._id,
            term=self._core.term,
            applied=self._core.applied,
            last_index=self._core.last_index,
        )
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._tick_loop)
                nursery.start_soon(self._inbound_loop)
                nursery.start_soon(self._driver_loop)
                nursery.start_soon(self._apply_loop)
                task_status.started()
        finally:
            self._running = False
            self._stopped = True
            self._fail_all(NodeStopped(f"raft node {self._id} stopped"))
            log.info("raft node stopped", node=self._id)

    async def _tick_loop(self) -> None:
        tick = self._config.tick_length
        while True:
            await trio.sleep(tick)
            self._core.tick()
            self._heartbeats_now()
            self._wake()

    async def _inbound_loop(self) -> None:
        async for msg in self._transport.inbound:
            self._core.step(msg)
            self._heartbeats_now()
            self._wake()

    def _heartbeats_now(self) -> None:
        """While the driver waits for the disk or the state machine, send heartbeats and
        their replies at once rather than after it (for `busy_heartbeat_seconds` at most)."""
        since = self._busy_since
        if since is None or trio.current_time() - since > self._config.busy_heartbeat_seconds:
            return
        beats = self._core.take_heartbeats()
        if beats:
            self._transport.send(beats)

    @contextlib.contextmanager
    def _busy(self, since: float | None = None) -> Iterator[None]:
        """Mark the driver as waiting for the disk or the state machine (`_heartbeats_now`),
        since now or since the wait's cause began."""
        self._busy_since = trio.current_time() if since is None else since
        try:
            yield
        finally:
            self._busy_since = None

    def _apply_stuck(self) -> bool:
        since = self._applying_since
        return (
            since is not None and trio.current_time() - since > self._config.busy_heartbeat_seconds
        )

    async def _driver_loop(self) -> None:
        """Drive Readies; while one apply call lasts longer than `busy_heartbeat_seconds`,
        pause (no Ready, no heartbeat): a leader whose state machine is stuck looks dead
        to its followers and is replaced, as one whose disk is stuck."""
        while True:
            while not self._core.has_ready():
                await self._wakeup.wait()
                self._wakeup = trio.Event()
            if self._apply_stuck():
                with self._busy(self._applying_since):
                    await self._wait_for(lambda: not self._apply_stuck())
            await self._handle(self._core.ready())

    async def _handle(self, ready: Ready) -> None:
        """One Ready, in the contract's order: persist, send, restore or queue the committed
        entries for the apply loop, advance."""
        if needs_persist(ready):
            with self._busy():
                await self._offload(self._storage.persist, ready)
            self._storage.install(ready)
        if ready.messages:
            self._transport.send(ready.messages)
        if ready.snapshot is not None:
            with self._busy(self._applying_since):
                await self._wait_for(lambda: not self._to_apply)
            await self._machine.restore(ready.snapshot)
            self._applied_term = ready.snapshot.meta.term
            self._fail_proposals_up_to(ready.snapshot.meta.index)
        self._core.advance_persisted(ready)
        if ready.committed_entries:
            if len(self._to_apply) >= self._config.apply_backlog:
                with self._busy(self._applying_since):
                    await self._wait_for(lambda: len(self._to_apply) < self._config.apply_backlog)
            self._to_apply.append(ready.committed_entries)
            self._apply_wakeup.set()
        for state in ready.read_states:
            waiter = self._reads.pop(state.ctx, None)
            if waiter is not None:
                waiter.finish(outcome.Value(state.index))
        if ready.soft_state is not None or ready.hard_state is not None:
            self._observe_leadership()
        self._notify()

    async def _apply_loop(self) -> None:
        """Apply the queued batches, all that wait at once, in log order."""
        while True:
            while not self._to_apply:
                await self._apply_wakeup.wait()
                self._apply_wakeup = trio.Event()
            batches = list(self._to_apply)
            entries = [entry for batch in batches for entry in batch]
            self._applying_since = trio.current_time()
            try:
                results = await self._machine.apply(entries)
            finally:
                self._applying_since = None
            if len(results) != len(entries):
                raise RaftError(
                    f"state machine returned {len(results)} results for {len(entries)} entries"
                )
            del self._to_apply[: len(batches)]
            self._resolve_proposals(entries, results)
            self._applied_term = entries[-1].term
            self._core.advance_applied(entries)
            self._wake()
            self._notify()

    # -- requests -------------------------------------------------------------------------

    async def propose(self, data: bytes) -> object:
        """Replicate a command; returns the state machine's result once it is applied here.
        Raises NotLeader (nothing proposed), ProposalDropped (refused or overwritten),
        LeadershipLost (outcome unknown) or NodeStopped."""
        self._check_running()
        index = self._core.propose(data)
        return await self._await_proposal(index)

    async def propose_conf_change(self, change: ConfChange) -> object:
        """Replicate a membership change; returns once it is applied here (as `propose`)."""
        self._check_running()
        index = self._core.propose_conf_change(change)
        return await self._await_proposal(index)

    async def read_index(self) -> int:
        """A linearizable read point: once this returns, the local state machine reflects
        every write committed before the call. Raises NotLeader when no leader is known,
        LeadershipLost if leadership changes meanwhile, NodeStopped. A request or answer
        lost on the network is not retried: callers bound the wait (trio.fail_after)."""
        self._check_running()
        self._read_seq += 1
        ctx = self._read_prefix + str(self._read_seq).encode()
        self._core.read_index(ctx)
        waiter = _Waiter(self._core.term)
        self._reads[ctx] = waiter
        self._wake()
        try:
            index = await waiter.wait()
        finally:
            self._reads.pop(ctx, None)
        assert isinstance(index, int)
        await self.wait_applied(index)
        return index

    async def barrier(self) -> int:
        """On the leader: wait until an entry of the current term (the no-op a new leader
        appends) is applied here, so the state machine holds everything committed before
        this term. Returns the term. Raises NotLeader / LeadershipLost / NodeStopped."""
        self._check_running()
        if self._core.role is not Role.LEADER:
            raise NotLeader(self._core.leader_id)
        term = self._core.term

        def ready() -> bool:
            if self._core.term != term or self._core.role is not Role.LEADER:
                raise LeadershipLost(self._core.leader_id)
            return self._applied_term == term

        await self._wait_for(ready)
        return term

    async def wait_applied(self, index: int) -> None:
        """Wait until the local state machine has applied `index` (NodeStopped if the node
        stops first)."""
        await self._wait_for(lambda: self._core.applied >= index)

    def transfer_leader(self, target: int) -> None:
        """Hand leadership to `target` (used on graceful leave); NotLeader if not leading."""
        self._core.transfer_leader(target)
        self._wake()

    async def compact(self, index: int, data: bytes) -> None:
        """Record the state machine's image at `index` and let the log before it go. The
        image is stored first, apart from the log's writes (`NodeStorage.stage_snapshot`):
        written with them, it held up every proposal for as long as it took."""
        await trio.to_thread.run_sync(self._storage.stage_snapshot, index, data)
        self._core.compact(index, data)
        self._wake()

    def report_down(self, node_id: int) -> None:
        """The transport's word that `node_id`'s process is gone (`RaftCore.report_down`)."""
        if self._running:
            self._core.report_down(node_id)
            self._wake()

    def campaign(self) -> None:
        """Start an election now (tests, and a single-node cluster's first start)."""
        self._core.campaign()
        self._wake()

    def leadership(self) -> LeadershipWatch:
        """`async for change in node.leadership()`: the current leadership, then every
        change. Changes closer together than the subscriber reads them are coalesced: it
        always sees the latest term and leader. Ends with NodeStopped."""
        return LeadershipWatch(self)

    async def next_leadership(self, seen: int) -> tuple[int, LeadershipChange]:
        """The leadership once its version differs from `seen` (-1 for the current one),
        with its version (LeadershipWatch's building block)."""
        await self._wait_for(lambda: self._leadership_version != seen)
        return self._leadership_version, self._leadership

    # -- plumbing -------------------------------------------------------------------------

    def _check_running(self) -> None:
        if not self._running:
            raise NodeStopped(f"raft node {self._id} is not running")

    def _wake(self) -> None:
        self._wakeup.set()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_for(self, predicate: _Predicate) -> None:
        while not predicate():
            if not self._running:
                raise NodeStopped(f"raft node {self._id} stopped")
            await self._changed.wait()

    async def _await_proposal(self, index: int) -> object:
        waiter = _Waiter(self._core.term)
        self._proposals[index] = waiter
        self._wake()
        try:
            return await waiter.wait()
        finally:
            if self._proposals.get(index) is waiter:
                del self._proposals[index]

    def _resolve_proposals(self, entries: Sequence[Entry], results: Sequence[object]) -> None:
        if not self._proposals:
            return
        for entry, result in zip(entries, results, strict=True):
            waiter = self._proposals.pop(entry.index, None)
            if waiter is None:
                continue
            if entry.term == waiter.term:
                waiter.finish(outcome.Value(result))
            else:
                waiter.finish(
                    outcome.Error(
                        ProposalDropped(f"entry {entry.index} was overwritten by term {entry.term}")
                    )
                )

    def _fail_proposals_up_to(self, index: int) -> None:
        for i in [i for i in self._proposals if i <= index]:
            self._proposals.pop(i).finish(outcome.Error(LeadershipLost(self._core.leader_id)))

    def _observe_leadership(self) -> None:
        core = self._core
        change = LeadershipChange(core.term, core.leader_id, core.role is Role.LEADER)
        if change == self._leadership:
            return
        was_leader, old_term = self._leadership.is_leader, self._leadership.term
        self._leadership = change
        self._leadership_version += 1
        log.info(
            "raft leadership changed",
            node=self._id,
            term=change.term,
            leader=change.leader_id,
            is_leader=change.is_leader,
        )
        if (was_leader and not change.is_leader) or change.term != old_term:
            lost = LeadershipLost(change.leader_id)
            for waiter in [*self._proposals.values(), *self._reads.values()]:
                if waiter.term != change.term or not change.is_leader:
                    waiter.finish(outcome.Error(lost))

    def _fail_all(self, error: RaftError) -> None:
        for waiter in [*self._proposals.values(), *self._reads.values()]:
            waiter.finish(outcome.Error(error))
        self._proposals.clear()
        self._reads.clear()
        self._notify()


@attrs.define(eq=False)
class LeadershipWatch:
    """An async iterator over a node's leadership changes (see RaftNode.leadership)."""

    _node: RaftNode
    _seen: int = -1

    def __aiter__(self) -> LeadershipWatch:
        return self

    async def __anext__(self) -> LeadershipChange:
        self._seen, change = await self._node.next_leadership(self._seen)
        return change


class _Predicate(Protocol):
    def __call__(self) -> bool: ...
