"""Wall-clock time tied to Trio's clock, so that MockClock drives schedules in tests.

The scheduler thinks in UTC datetimes but must sleep on Trio's clock. `WallClock` maps one onto
the other with a fixed offset taken once: in production from ``time.time()``, in tests from any
chosen epoch, and then ``trio.testing.MockClock`` moves both together.
"""

import time
from datetime import UTC, datetime

import attrs
import trio


@attrs.define
class WallClock:
    """UTC ``now`` = ``epoch_offset`` + ``trio.current_time()``."""

    _epoch_offset: float

    @classmethod
    def system(cls) -> "WallClock":
        return cls(time.time() - trio.current_time())

    @classmethod
    def starting_at(cls, start: datetime) -> "WallClock":
        return cls(start.timestamp() - trio.current_time())

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._epoch_offset + trio.current_time(), UTC)

    def deadline(self, at: datetime) -> float:
        """The Trio deadline at which the wall clock reads ``at``."""
        return at.timestamp() - self._epoch_offset

    async def sleep_until(self, at: datetime) -> None:
        await trio.sleep_until(self.deadline(at))
