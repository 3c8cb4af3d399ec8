"""Items held until each one's time by a single task, instead of a sleeping task each.

A run planned ahead waits for its tick. Waiting in a task of its own costs, per run, a
cancel scope, a deadline and two passes of the event loop; at a thousand runs a second
that is a fair share of the CPU. A `DueQueue` keeps the waiting items in a heap and hands
each to its ``release`` callback once its time has come (never before), from one task.
That task sleeps on an `Alarm`: a timerfd where there is one, so a run starts within a
fraction of a millisecond of its tick rather than after Trio's millisecond rounding.
"""

import heapq
from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

import attrs
import trio

from dkron_trio.alarm import Alarm, open_alarm
from dkron_trio.clock import WallClock

T = TypeVar("T")


@attrs.define(eq=False)
class DueQueue(Generic[T]):
    """`add` items, and run `run` in a nursery; ``release`` must only queue, not block."""

    _clock: WallClock
    _release: Callable[[T], None]
    _heap: list[tuple[datetime, int, T]] = attrs.field(init=False, factory=list)
    _seq: int = attrs.field(init=False, default=0)
    _alarm: Alarm | None = attrs.field(init=False, default=None)
    """Set to the earliest item's time while `run` runs."""

    def add(self, at: datetime, item: T) -> None:
        """Release ``item`` once the wall clock reads ``at``."""
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, item))
        if self._heap[0][1] == self._seq and self._alarm is not None:  # the earliest now
            self._alarm.set(self._clock.deadline(at))

    def held(self) -> list[T]:
        """The items not released yet (in no particular order)."""
        return [item for _, _, item in self._heap]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Release items as their time comes, until cancelled."""
        self._alarm = alarm = open_alarm()
        try:
            task_status.started()
            while True:
                if self._heap:
                    alarm.set(self._clock.deadline(self._heap[0][0]))
                else:
                    alarm.clear()
                await alarm.wait()
                now = self._clock.now()
                while self._heap and self._heap[0][0] <= now:
                    self._release(heapq.heappop(self._heap)[2])
        finally:
            self._alarm = None
            alarm.close()
