"""The discrete-event loop: nodes tick, messages travel through a SimNetwork, actions fire.

Generic over the message type so that any protocol core (Raft, SWIM gossip) can run in it:
a node only has to implement `SimNode`. Time is integer milliseconds. Events at the same
time run in the order they were scheduled, so a run is a pure function of its seed and
inputs; a rolling hash of every event (`trace_hash`) lets tests prove a replay is exact. (It
chains Python's hash of int tuples, which is fast and, unlike hashes of str or bytes, the same in
every process of the same interpreter build.)
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import attrs

from dkron_trio.sim.network import SimNetwork, SimRng

MsgT = TypeVar("MsgT")


class SimNode(Protocol[MsgT]):
    """What the loop drives. After each event that touched a node (a tick, a batch of
    deliveries, an action) the loop takes the node's outbox: the natural place for a node to
    do its deferred work, as a Raft shell handles one Ready after several messages."""

    def tick(self, now: int) -> None: ...

    def receive(self, src: int, msg: MsgT, now: int) -> None: ...

    def take_outbox(self, now: int) -> list[tuple[int, MsgT]]:
        """(destination, message) pairs queued since the last call."""
        ...


class _Kind(enum.IntEnum):
    TICK = 0
    DELIVER = 1
    ACTION = 2


Action = Callable[[int], None]
"""Something scheduled to happen at a time (a fault, a client call); gets `now`."""


@attrs.define
class Simulation(Generic[MsgT]):
    """Runs nodes over a network in simulated time.

    Deliveries are rounded up to multiples of `slot_ms`, and everything arriving at one node in
    one slot is handed over as one event: the granularity that trades timing resolution for
    speed. A node that is stopped (crashed) gets no ticks and loses messages that arrive while
    it is down; a node started again under the same id receives messages sent to that id.
    """

    _rng: SimRng
    _network: SimNetwork
    _tick_ms: int = 100
    _slot_ms: int = 1
    _now: int = 0
    _seq: int = 0
    _queue: list[tuple[int, int, _Kind, int, int, Action | None]] = attrs.field(factory=list)
    _inbox: dict[tuple[int, int], list[tuple[int, MsgT]]] = attrs.field(factory=dict)
    _nodes: dict[int, SimNode[MsgT]] = attrs.field(factory=dict)
    _incarnation: dict[int, int] = attrs.field(factory=dict)
    _trace: int = 0
    _events: int = 0
    _deliveries: int = 0

    def __attrs_post_init__(self) -> None:
        if self._tick_ms <= 0:
            raise ValueError(f"tick_ms: must be positive, got {self._tick_ms}")
        if self._slot_ms <= 0:
            raise ValueError(f"slot_ms: must be positive, got {self._slot_ms}")

    @property
    def now(self) -> int:
        return self._now

    @property
    def network(self) -> SimNetwork:
        return self._network

    @property
    def events(self) -> int:
        """Events processed so far."""
        return self._events

    @property
    def deliveries(self) -> int:
        """Messages delivered so far."""
        return self._deliveries

    def trace_hash(self) -> str:
        return f"{self._trace & 0xFFFF_FFFF_FFFF_FFFF:016x}"

    def trace(self, *facts: int) -> None:
        """Mix protocol-level facts (state changes, outputs) into the trace hash."""
        self._trace = hash((self._trace, *facts))

    def start(self, node_id: int, node: SimNode[MsgT]) -> None:
        """Bring a node up; its first tick comes at a random phase within one tick."""
        if node_id in self._nodes:
            raise ValueError(f"node {node_id} is already running")
        self._nodes[node_id] = node
        incarnation = self._incarnation.get(node_id, 0) + 1
        self._incarnation[node_id] = incarnation
        first = self._now + self._rng.randrange(1, self._tick_ms + 1)
        self._push(first, _Kind.TICK, node_id, incarnation)

    def stop(self, node_id: int) -> None:
        """Crash a node: it vanishes with everything it had not sent."""
        if self._nodes.pop(node_id, None) is None:
            raise ValueError(f"node {node_id} is not running")

    def at(self, time: int, action: Action) -> None:
        """Run `action(now)` at `time` (not before now)."""
        self._push(max(time, self._now), _Kind.ACTION, 0, 0, action)

    def flush(self, node_id: int) -> None:
        """Send what a node queued outside a tick or delivery (e.g. after a client call)."""
        node = self._nodes.get(node_id)
        if node is not None:
            self._send(node_id, node)

    def run_until(self, end: int) -> None:
        """Process every event scheduled before `end`; then the clock reads `end`."""
        queue = self._queue
        while queue and queue[0][0] < end:
            time, _, kind, a, b, action = heapq.heappop(queue)
            self._now = time
            self._events += 1
            self._trace = hash((self._trace, time, kind, a, b))
            if kind is _Kind.TICK:
                node = self._nodes.get(a)
                if node is None or self._incarnation[a] != b:
                    continue
                node.tick(time)
                self._send(a, node)
                self._push(time + self._tick_ms, _Kind.TICK, a, b)
            elif kind is _Kind.DELIVER:
                batch = self._inbox.pop((time, a))
                node = self._nodes.get(a)
                if node is None:
                    continue
                connected = self._network.connected
                for src, msg in batch:
                    if connected(src, a):
                        self._deliveries += 1
                        node.receive(src, msg, time)
                self._send(a, node)
            else:
                assert action is not None
                action(time)

        self._now = max(self._now, end)

    def _send(self, src: int, node: SimNode[MsgT]) -> None:
        now = self._now
        slot = self._slot_ms
        for dst, msg in node.take_outbox(now):
            for delay in self._network.transmit(src, dst):
                at = -(-(now + delay) // slot) * slot
                batch = self._inbox.get((at, dst))
                if batch is None:
                    self._inbox[(at, dst)] = [(src, msg)]
                    self._push(at, _Kind.DELIVER, dst, 0)
                else:
                    batch.append((src, msg))

    def _push(self, time: int, kind: _Kind, a: int, b: int, action: Action | None = None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, kind, a, b, action))
