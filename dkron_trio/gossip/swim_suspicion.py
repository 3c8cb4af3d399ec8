"""Lifeguard's suspicion timer: starts at a maximum timeout and decays logarithmically toward
a minimum as independent members confirm the suspicion, so a truly failed member is declared
dead quickly while a member suspected by one unlucky prober gets time to refute.
"""

from __future__ import annotations

import math

import attrs


def suspicion_timeout(mult: int, members: int, interval: int) -> int:
    """memberlist's floor: mult * max(1, log10(n)) * probe interval (in ticks, rounded up)."""
    scale = max(1.0, math.log10(max(1, members)))
    return math.ceil(mult * scale * interval)


@attrs.define
class Suspicion:
    """One suspected member's timer. `deadline` is the tick at which it is declared dead."""

    _start: int
    _k: int
    """Confirmations after which the timeout reaches its minimum."""
    _min: int
    _max: int
    _confirmers: set[str]
    _n: int = 0
    deadline: int = 0

    @classmethod
    def begin(cls, now: int, sender: str, k: int, min_ticks: int, max_ticks: int) -> Suspicion:
        s = cls(now, k, min_ticks, max_ticks, {sender})
        s.deadline = now + s._timeout()
        return s

    @property
    def confirmations(self) -> int:
        return self._n

    def confirm(self, sender: str) -> bool:
        """Count an independent confirmation; False if `sender` already counted or the timer
        is already at its floor (then the news need not be spread again)."""
        if self._n >= self._k or sender in self._confirmers:
            return False
        self._confirmers.add(sender)
        self._n += 1
        self.deadline = self._start + self._timeout()
        return True

    def _timeout(self) -> int:
        if self._k < 1:
            return self._min
        frac = math.log(self._n + 1) / math.log(self._k + 1)
        return max(self._min, math.floor(self._max - frac * (self._max - self._min)))
