"""A peer's queue of frames waiting for its sender task.

One-way frames sit in a bounded queue whose overflow policy is per use (drop the oldest
and count it, or block the producer). Calls sit in their own queue, never dropped: their
callers wait with a timeout, and a call abandoned before it was written is skipped. Urgent
one-way frames (Raft's heartbeats and votes) have a queue of their own, written before
anything else: behind megabytes of log entries to a slow follower they would arrive after
its election timeout. Order is kept within each queue, not between them.
"""

from __future__ import annotations

import collections

import attrs
import trio

from dkron_trio.rpc.config import Overflow, RpcConfig
from dkron_trio.rpc.counters import Counters, Metric
from dkron_trio.rpc.errors import RpcError
from dkron_trio.rpc.framing import Frame


@attrs.define(eq=False)
class PendingCall:
    """A request written (or waiting to be written) and the reply its caller awaits."""

    call_id: int
    data: bytes
    abandoned: bool = False
    _done: trio.Event = attrs.field(factory=trio.Event, init=False)
    _reply: Frame | None = attrs.field(default=None, init=False)
    _error: RpcError | None = attrs.field(default=None, init=False)

    def resolve(self, reply: Frame) -> None:
        if not self._done.is_set():
            self._reply = reply
            self._done.set()

    def fail(self, error: RpcError) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def wait(self) -> Frame:
        await self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._reply is not None
        return self._reply


class Outbox:
    def __init__(self, config: RpcConfig, counters: Counters) -> None:
        self._config = config
        self._counters = counters
        self._oneway: collections.deque[bytes] = collections.deque()
        self._urgent: collections.deque[bytes] = collections.deque()
        self._calls: collections.deque[PendingCall] = collections.deque()
        self._nonempty = trio.lowlevel.ParkingLot()
        self._space = trio.lowlevel.ParkingLot()

    def __len__(self) -> int:
        return len(self._urgent) + len(self._oneway) + len(self._calls)

    def put_nowait(self, data: bytes) -> bool:
        """Queue a one-way frame; False if the queue is full and the policy is BLOCK."""
        if len(self._oneway) >= self._config.queue_size:
            if self._config.overflow is Overflow.BLOCK:
                return False
            self._oneway.popleft()
            self._counters.add(Metric.QUEUE_DROPPED)
        self._oneway.append(data)
        self._nonempty.unpark_all()
        return True

    def put_urgent_nowait(self, data: bytes) -> None:
        """Queue a one-way frame ahead of the others (the oldest urgent one is dropped and
        counted if `queue_size` of them wait already)."""
        if len(self._urgent) >= self._config.queue_size:
            self._urgent.popleft()
            self._counters.add(Metric.QUEUE_DROPPED)
        self._urgent.append(data)
        self._nonempty.unpark_all()

    async def put(self, data: bytes) -> None:
        """Queue a one-way frame, waiting for space under the BLOCK policy."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self.put_nowait(data):
            await self._space.park()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def put_call(self, call: PendingCall) -> None:
        self._calls.append(call)
        self._nonempty.unpark_all()

    async def wait_nonempty(self) -> None:
        while not (self._urgent or self._oneway or self._calls):
            await self._nonempty.park()

    def take(self, max_bytes: int) -> tuple[list[bytes], list[PendingCall]]:
        """Frames to write next, urgent ones first, then calls, about max_bytes in all (at
        least one frame)."""
        calls: list[PendingCall] = []
        data = list(self._urgent)
        size = sum(len(frame) for frame in data)
        self._urgent.clear()
        while self._calls and size < max_bytes:
            call = self._calls.popleft()
            if not call.abandoned:
                calls.append(call)
                data.append(call.data)
                size += len(call.data)
        while self._oneway and size < max_bytes:
            frame = self._oneway.popleft()
            data.append(frame)
            size += len(frame)
        self._space.unpark_all()
        return data, calls
