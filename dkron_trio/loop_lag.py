"""How late this process's event loop runs its timers: the sign of an overloaded server.

A task sleeps `interval` over and over and records how much later than asked it woke. The
mean over the last `window` seconds is the lag: a single long step (a garbage collection)
hardly moves it, a loop busy for seconds on end does. The scheduler holds new plans while
it is high (`Scheduler`), since a leader whose loop falls seconds behind sends its Raft
heartbeats late and loses its term, and the cluster then spends its time electing.
"""

import collections

import attrs
import trio

INTERVAL = 0.05
WINDOW = 1.0


@attrs.define
class LoopLag:
    """Start `run` in a nursery; `value()` is the current lag in seconds."""

    _interval: float = INTERVAL
    _window: float = WINDOW
    _samples: collections.deque[tuple[float, float]] = attrs.field(factory=collections.deque)
    """(when it woke, how late), oldest first, within the last `_window`."""

    def value(self) -> float:
        if not self._samples:
            return 0.0
        return sum(late for _, late in self._samples) / len(self._samples)

    def record(self, now: float, late: float) -> None:
        """Add one wake-up's lateness (seconds) seen at `now`."""
        samples = self._samples
        samples.append((now, max(late, 0.0)))
        while samples[0][0] < now - self._window:
            samples.popleft()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            asked = trio.current_time() + self._interval
            await trio.sleep_until(asked)
            now = trio.current_time()
            self.record(now, now - asked)
