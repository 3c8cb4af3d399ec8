"""A seeded network that loses, delays, duplicates and reorders messages, and partitions.

It only decides the fate of each message (dropped, or delivered after which delays); the
event loop schedules the deliveries. Reordering falls out of independent random delays.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import attrs


class SimRng(Protocol):
    """The part of `random.Random` the simulator uses (seeded by the caller)."""

    def random(self) -> float: ...

    def randrange(self, start: int, stop: int | None = ..., step: int = ...) -> int: ...


def _probability(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name}: must be a probability in [0, 1], got {value}")


def _non_negative(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name}: must be >= 0, got {value}")


@attrs.frozen
class LinkConditions:
    """How every link behaves: loss and duplication probabilities, delay range in ms."""

    drop: float = attrs.field(default=0.0, validator=_probability)
    duplicate: float = attrs.field(default=0.0, validator=_probability)
    min_delay: int = attrs.field(default=1, validator=_non_negative)
    max_delay: int = attrs.field(default=5, validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.max_delay < self.min_delay:
            raise ValueError(
                f"max_delay: must be >= min_delay ({self.max_delay} < {self.min_delay})"
            )


RELIABLE = LinkConditions()


@attrs.define
class SimNetwork:
    """Link conditions plus a set of directed links that lose everything (partitions)."""

    _rng: SimRng
    _conditions: LinkConditions = RELIABLE
    _blocked: set[tuple[int, int]] = attrs.field(factory=set)

    def set_conditions(self, conditions: LinkConditions) -> None:
        self._conditions = conditions

    def partition(self, *groups: Iterable[int]) -> None:
        """Cut every link between different groups, both ways (adds to existing cuts)."""
        sides = [sorted(set(g)) for g in groups]
        for i, side in enumerate(sides):
            for other in sides[i + 1 :]:
                for a in side:
                    for b in other:
                        self._blocked.add((a, b))
                        self._blocked.add((b, a))

    def block(self, src: int, dst: int) -> None:
        """Cut one direction only (an asymmetric partition)."""
        self._blocked.add((src, dst))

    def heal(self) -> None:
        self._blocked.clear()

    def connected(self, src: int, dst: int) -> bool:
        return (src, dst) not in self._blocked

    def transmit(self, src: int, dst: int) -> list[int]:
        """Delays (ms) after which copies of a message sent now arrive; empty if it is lost."""
        if (src, dst) in self._blocked:
            return []
        c = self._conditions
        if c.drop and self._rng.random() < c.drop:
            return []
        copies = 2 if c.duplicate and self._rng.random() < c.duplicate else 1
        if c.min_delay == c.max_delay:
            return [c.min_delay] * copies
        return [self._rng.randrange(c.min_delay, c.max_delay + 1) for _ in range(copies)]
