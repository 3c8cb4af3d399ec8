"""What the SWIM core reports: member snapshots and membership events, plus the narrow
randomness interface it needs (a seeded `random.Random` satisfies it)."""

from __future__ import annotations

import enum
from collections.abc import MutableSequence
from typing import Any, Protocol

import attrs

from dkron_trio.gossip.messages import Addr, MemberState, Tags


class SwimRng(Protocol):
    def random(self) -> float: ...

    def randrange(self, start: int, stop: int | None = ..., step: int = ...) -> int: ...

    def shuffle(self, x: MutableSequence[Any]) -> None: ...


class EventKind(enum.Enum):
    JOINED = "joined"
    """A member is new, or back after being failed or left."""
    UPDATED = "updated"
    """An alive member's tags or address changed."""
    RECOVERED = "recovered"
    """A suspected member refuted the suspicion."""
    SUSPECT = "suspect"
    FAILED = "failed"
    LEFT = "left"
    REAPED = "reaped"
    """A failed or left member was forgotten after the reconnect timeout."""


class TagsTooLarge(ValueError):
    """A tag map whose encoding exceeds the meta size limit."""


@attrs.frozen
class Member:
    name: str
    addr: Addr
    tags: Tags = attrs.field(hash=False)
    incarnation: int
    state: MemberState


@attrs.frozen
class MemberEvent:
    kind: EventKind
    member: Member
