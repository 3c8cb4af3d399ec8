"""Group commit for callers that arrive together: one flush serves every item queued.

Many tasks each want one small thing written or sent (a journal row, a report, an order),
and each write has a fixed cost that dwarfs the item (an fsync, a Raft entry, an RPC round
trip). `Coalescer.submit` queues the item; whoever finds no flush in flight flushes the whole
queue (up to ``max_batch``) with one call and hands each caller its own outcome. Items that
arrive during a flush wait for the next one, so batches grow exactly as fast as load does
and an idle system pays no delay.

A flush once started runs to its end for everyone in it (it is shielded from the flushing
caller's cancellation), so the flush function must bound its own time. A caller cancelled
before its item was taken leaves nothing behind; one cancelled after just stops waiting.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import attrs
import trio

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[list[T]], Awaitable[Sequence[R | Exception]]]
"""Writes a batch; returns one outcome per item, in order (a value or the item's error)."""


class FlushInterrupted(Exception):
    """The flush carrying this item stopped abnormally: its outcome is unknown."""


@attrs.define(eq=False)
class _Waiter(Generic[T, R]):
    item: T
    wake: trio.Event = attrs.Factory(trio.Event)
    done: bool = False
    outcome: R | Exception | None = None


@attrs.define(eq=False)
class Coalescer(Generic[T, R]):
    _flush: Flush[T, R]
    _max_batch: int = 512
    _weight: Callable[[T], int] | None = None
    """An item's size toward ``max_weight`` (bytes on the wire, say); None: unweighed."""
    _max_weight: int = 0
    """Most total weight of a batch (a heavier single item still goes, alone)."""
    _queue: list[_Waiter[T, R]] = attrs.field(init=False, factory=list)
    _flushing: bool = attrs.field(init=False, default=False)

    async def submit(self, item: T) -> R:
        """The item's outcome once a flush carried it; its error is raised."""
        waiter: _Waiter[T, R] = _Waiter(item)
        self._queue.append(waiter)
        try:
            while not waiter.done:
                if self._flushing:
                    await waiter.wake.wait()
                    waiter.wake = trio.Event()
                else:
                    await self._flush_queue()
        except BaseException:
            if waiter in self._queue:
                self._queue.remove(waiter)
            self._hand_over()
            raise
        if isinstance(waiter.outcome, Exception):
            raise waiter.outcome
        return waiter.outcome  # type: ignore[return-value]

    async def _flush_queue(self) -> None:
        self._flushing = True
        batch = self._take()
        outcomes: Sequence[R | Exception] = [FlushInterrupted("flush interrupted")] * len(batch)
        try:
            with trio.CancelScope(shield=True):
                outcomes = await self._flush([w.item for w in batch])
            if len(outcomes) != len(batch):
                raise AssertionError(f"flush gave {len(outcomes)} outcomes for {len(batch)}")
        except Exception as exc:  # the whole batch shares the failure
            outcomes = [exc] * len(batch)
        finally:
            self._flushing = False
            self._settle(batch, outcomes)
            self._hand_over()

    def _take(self) -> list[_Waiter[T, R]]:
        count = min(len(self._queue), self._max_batch)
        if self._weight is not None:
            total = 0
            for i, waiter in enumerate(self._queue[:count]):
                total += self._weight(waiter.item)
                if i and total > self._max_weight:
                    count = i
                    break
        batch = self._queue[:count]
        del self._queue[:count]
        return batch

    @staticmethod
    def _settle(batch: list[_Waiter[T, R]], outcomes: Sequence[R | Exception]) -> None:
        for waiter, outcome in zip(batch, outcomes, strict=True):
            waiter.outcome = outcome
            waiter.done = True
            waiter.wake.set()

    def _hand_over(self) -> None:
        """Wake the oldest waiting caller to flush the next batch, if nobody is flushing."""
        if not self._flushing and self._queue:
            self._queue[0].wake.set()
