"""What every schedule shares: its error type, its kinds and the Schedule base class."""

import abc
import enum
from datetime import datetime
from typing import ClassVar

import attrs


class ScheduleError(ValueError):
    """A schedule string (or its timezone) that cannot be used; the message names the problem."""


class ScheduleKind(enum.Enum):
    """What drives a schedule."""

    CRON = "cron"
    EVERY = "every"
    AT = "at"
    MANUAL = "manual"


@attrs.frozen
class Schedule(abc.ABC):
    """A parsed schedule; one subclass per kind (a single object keeps parsing cheap).

    `spec` is the text as given, `timezone` the zone in effect (after a TZ= prefix).
    """

    kind: ClassVar[ScheduleKind]
    spec: str
    timezone: str

    @abc.abstractmethod
    def next_after(self, t: datetime) -> datetime | None:
        """First fire strictly after `t` (aware); aware UTC, or None if it never fires again."""
