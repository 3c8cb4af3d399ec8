"""A discrete-event loop for SWIM clusters, faster than the generic `loop.Simulation` for
hundreds of nodes: a node is woken only at the ticks where its core has work
(`SwimCore.next_due`) and its clock is brought up to date (`SwimCore.advance`, equivalent to
ticking every 100 ms) before it handles a datagram. It shares `SimNetwork` for loss, delay,
duplication and partitions. Time is integer milliseconds; same-time events run in the order
they were scheduled, so a run is a function of its seed.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Callable

import attrs

from dkron_trio.gossip.config import TICK_MS
from dkron_trio.gossip.messages import Addr, Packet
from dkron_trio.gossip.swim import SwimCore
from dkron_trio.sim.network import SimNetwork, SimRng


class _Kind(enum.IntEnum):
    WAKE = 0
    DELIVER = 1
    ACTION = 2


Action = Callable[[int], None]


@attrs.define
class _Slot:
    core: SwimCore
    base: int
    """Time (ms) of the core's tick 0: tick k falls at base + k * TICK_MS."""
    wake: int = -1
    stalled_at: int | None = None
    held: list[tuple[int, Packet]] = attrs.field(factory=list)


@attrs.define
class GossipLoop:
    _rng: SimRng
    _network: SimNetwork
    _address: Callable[[int], Addr]
    _ids: dict[Addr, int]
    _on_output: Callable[[int, int, SwimCore], None]
    """Called with (now, node id, core) after each event on a node, before its outbox is
    sent (to collect its events)."""
    _slot_ms: int = 5
    _now: int = 0
    _seq: int = 0
    _queue: list[tuple[int, int, _Kind, int, Action | None]] = attrs.field(factory=list)
    _inbox: dict[tuple[int, int], list[tuple[int, Packet]]] = attrs.field(factory=dict)
    _slots: dict[int, _Slot] = attrs.field(factory=dict)
    _deliveries: int = 0

    @property
    def now(self) -> int:
        return self._now

    @property
    def network(self) -> SimNetwork:
        return self._network

    @property
    def deliveries(self) -> int:
        return self._deliveries

    def start(self, node_id: int, core: SwimCore) -> None:
        """Bring a node up with its tick grid at a random phase."""
        if node_id in self._slots:
            raise ValueError(f"node {node_id} is already running")
        base = self._now + self._rng.randrange(1, TICK_MS + 1) - TICK_MS
        slot = self._slots[node_id] = _Slot(core, base - core.now * TICK_MS)
        self._align(slot)
        self._reschedule(node_id, slot)

    def stop(self, node_id: int) -> None:
        """Crash: the node vanishes, and datagrams to it are lost."""
        if self._slots.pop(node_id, None) is None:
            raise ValueError(f"node {node_id} is not running")

    def running(self, node_id: int) -> bool:
        return node_id in self._slots

    def stall(self, node_id: int) -> None:
        """Freeze a node: no ticks; datagrams wait in its buffer."""
        slot = self._slots[node_id]
        if slot.stalled_at is None:
            slot.stalled_at = self._now

    def resume(self, node_id: int) -> None:
        """Unfreeze: buffered datagrams are handled, and the clock goes on from where it stopped
        (the shell does not burst missed ticks either)."""
        slot = self._slots[node_id]
        if slot.stalled_at is None:
            return
        lost = (self._now - slot.stalled_at) // TICK_MS * TICK_MS
        slot.base += lost
        slot.stalled_at = None
        self._catch_up(slot)
        self._align(slot)
        held, slot.held = slot.held, []
        for src, packet in held:
            slot.core.receive(self._address(src), packet)
        self._after(node_id, slot)

    def flush(self, node_id: int) -> None:
        """Send what a node queued outside an event (after join, set_tags, leave)."""
        slot = self._slots.get(node_id)
        if slot is not None:
            self._after(node_id, slot)

    def at(self, time: int, action: Action) -> None:
        self._push(max(time, self._now), _Kind.ACTION, 0, action)

    def run_until(self, end: int) -> None:
        queue = self._queue
        while queue and queue[0][0] < end:
            time, _, kind, node_id, action = heapq.heappop(queue)
            self._now = time
            if kind is _Kind.WAKE:
                slot = self._slots.get(node_id)
                if slot is None or slot.wake != time:
                    continue
                slot.wake = -1
                if slot.stalled_at is not None:
                    continue
                self._catch_up(slot)
                self._after(node_id, slot)
            elif kind is _Kind.DELIVER:
                batch = self._inbox.pop((time, node_id))
                slot = self._slots.get(node_id)
                if slot is None:
                    continue
                connected = self._network.connected
                batch = [(src, p) for src, p in batch if connected(src, node_id)]
                self._deliveries += len(batch)
                if slot.stalled_at is not None:
                    slot.held.extend(batch)
                    continue
                self._catch_up(slot)
                for src, packet in batch:
                    slot.core.receive(self._address(src), packet)
                self._after(node_id, slot)
            else:
                assert action is not None
                action(time)
        self._now = max(self._now, end)

    def _align(self, slot: _Slot) -> None:
        """Tell the core which simulated wall-clock tick its current tick is."""
        slot.core.set_wall_tick(slot.base // TICK_MS + slot.core.now)

    def _catch_up(self, slot: _Slot) -> None:
        target = (self._now - slot.base) // TICK_MS
        if target > slot.core.now:
            slot.core.advance(target - slot.core.now)

    def _after(self, node_id: int, slot: _Slot) -> None:
        self._on_output(self._now, node_id, slot.core)
        now, step = self._now, self._slot_ms
        ids = self._ids
        for addr, packet in slot.core.take_outbox():
            dst = ids.get(addr)
            if dst is None:
                continue
            for delay in self._network.transmit(node_id, dst):
                at = -(-(now + delay) // step) * step
                batch = self._inbox.get((at, dst))
                if batch is None:
                    self._inbox[(at, dst)] = [(node_id, packet)]
                    self._push(at, _Kind.DELIVER, dst)
                else:
                    batch.append((node_id, packet))
        self._reschedule(node_id, slot)

    def _reschedule(self, node_id: int, slot: _Slot) -> None:
        wake = slot.base + slot.core.next_due() * TICK_MS
        if wake != slot.wake:
            slot.wake = wake
            self._push(wake, _Kind.WAKE, node_id)

    def _push(self, time: int, kind: _Kind, node_id: int, action: Action | None = None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, kind, node_id, action))
