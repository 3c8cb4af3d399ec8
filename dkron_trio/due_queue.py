"""Items held until each one's time by a single task, instead of a sleeping task each.

A run planned ahead waits for its tick. Waiting in a task of its own costs, per run, a
cancel scope, a deadline and two passes of the event loop; at a thousand runs a second
that is a fair share of the CPU. A `DueQueue` keeps the waiting items in a heap and hands
each to its ``release`` callback once its time has come (never before), from one task.
That task sleeps on an `Alarm`: a timerfd where there is one, so a run starts within a
fraction of a millisecond of its tick rather than after Trio's millisecond rounding.

Handed on at its time, an item would start one pass of the event loop later: the task it
is handed to runs in the pass after the queue's own. So a queue made with ``early`` hands
each item on that much ahead, and the receiver sleeps the rest on an alarm of its own
(`alarm.sleep_until`), which the loop wakes directly. `HANDOFF` is the lead for runs.
"""

import heapq
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

import attrs
import trio

from dkron_trio.alarm import Alarm, open_alarm
from dkron_trio.clock import WallClock

T = TypeVar("T")

HANDOFF = timedelta(milliseconds=2)
"""How long before its tick a held run is handed to its own task (see the module
docstring): longer than a pass of a busy loop, short enough that few runs wait in tasks."""


@attrs.define(eq=False)
class DueQueue(Generic[T]):
    """`add` items, and run `run` in a nursery; ``release`` must only queue, not block."""

    _clock: WallClock
    _release: Callable[[T], None]
    _early: timedelta = timedelta(0)
    """Release each item this long before its time (its receiver waits the rest)."""
    _heap: list[tuple[datetime, int, T]] = attrs.field(init=False, factory=list)
    _seq: int = attrs.field(init=False, default=0)
    _alarm: Alarm | None = attrs.field(init=False, default=None)
    """Set to the earliest item's time while `run` runs."""

    def add(self, at: datetime, item: T) -> None:
        """Release ``item`` once the wall clock reads ``at`` (less ``early``)."""
        self._seq += 1
        at -= self._early
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
