"""Job schedules: every Dkron schedule form, and the next fire time (pure).

Forms (dkron-reference.md §B, plus 5-field crontab lines):

- 6-field cron, seconds first: `sec min hour dom month dow` with `* ? , - /`, month and
  weekday names (case-insensitive), weekday 0-6 and 7 = Sunday. A 5-field line is a
  crontab line (`min hour dom month dow`) with seconds = 0. Days follow robfig/cron: when
  both day-of-month and day-of-week are restricted a day matching either fires; a field
  that is `*` or `?` leaves the day to the other one. A spec whose days can never occur
  (`0 0 0 30 2 *`) is rejected.
- `~` (Dkron's hash) in a cron field is replaced by the sum of the job name's code points
  modulo the field's range: sec/min %60, hour %24, dom %28+1, month %12+1, dow %7. It is
  not applied to `@` forms (where it is simply invalid).
- Descriptors `@yearly @annually @monthly @weekly @daily @midnight @hourly @minutely`.
- `@every <Go duration>`: truncated to whole seconds; under 1 s counts as 1 s (robfig);
  zero or negative is an error. Fires at `anchor + k * interval`, k >= 0; the anchor is
  the job's starts_at or creation time (default when none is given: the Unix epoch).
- `@at <RFC3339>`: fires once. `@manually`: never.
- `TZ=<zone> ` / `CRON_TZ=<zone> ` prefix: overrides the job timezone.

Timezones (unlike Dkron, DESIGN.md §5.3): the job's timezone applies to cron lines and
descriptors alike; "" means UTC. `@every` and `@at` are instants and ignore it.

DST and other offset changes. A cron spec names *wall-clock* times; each wall time maps
to real instants as follows.

1. A wall time that exists once fires at that instant.
2. Gap (clocks jump forward, e.g. Berlin 02:00 -> 03:00): a wall time inside the gap does
   not exist; it fires once, at the instant the gap ends (Berlin 02:30 on spring-forward
   day fires at 03:00 local = 01:00 UTC). However many of the spec's times fall in one
   gap, the spec fires once there, never twice (also not again at 03:00 itself).
3. Repeated range (clocks go back, e.g. Berlin 03:00 -> 02:00): it depends on the hour
   field. A spec whose hour field allows every hour (`*`, `*/1`, `0-23`; also @hourly and
   @minutely) follows elapsed time: it fires at every real instant whose wall time
   matches, on both passes, so `0 */15 * * * *` fires every 15 real minutes through the
   repeated hour. A spec naming specific hours fires each wall time once, on its first
   occurrence (`0 30 2 * * *` fires at 02:30 CEST, not again at 02:30 CET).

The rules do not assume whole-hour shifts: Australia/Lord_Howe moves by 30 minutes (gap
02:00-02:30, repeated range 01:30-02:00) and the same three rules apply to those ranges.
"""

import enum
import re
from datetime import UTC, datetime, timedelta

import attrs

from dkron_trio.durations import DurationError, parse_go_duration
from dkron_trio.schedule_cron import CronRule, fires_ever
from dkron_trio.schedule_error import ScheduleError
from dkron_trio.schedule_fields import HASH_RANGES, Field, parse_field
from dkron_trio.schedule_zone import ZoneTimeline, timeline

__all__ = ["Schedule", "ScheduleError", "ScheduleKind", "parse_schedule"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_FIELDS = tuple(Field)
_DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
    "@minutely": "0 * * * * *",
}
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


class ScheduleKind(enum.Enum):
    """What drives a schedule."""

    CRON = "cron"
    EVERY = "every"
    AT = "at"
    MANUAL = "manual"


@attrs.frozen
class EveryRule:
    """`@every`: a fixed interval from an anchor instant."""

    interval: timedelta
    anchor: datetime

    def next_after(self, t: datetime) -> datetime:
        if t < self.anchor:
            return self.anchor
        return self.anchor + ((t - self.anchor) // self.interval + 1) * self.interval


@attrs.frozen
class AtRule:
    """`@at`: one instant."""

    at: datetime

    def next_after(self, t: datetime) -> datetime | None:
        return self.at if self.at > t else None


@attrs.frozen
class Schedule:
    """A parsed schedule. `next_after(t)` is the first fire strictly after `t`.

    `spec` is the text as given, `timezone` the zone in effect (after a TZ= prefix).
    """

    kind: ScheduleKind
    spec: str
    timezone: str
    _rule: CronRule | EveryRule | AtRule | None

    def next_after(self, t: datetime) -> datetime | None:
        """First fire strictly after `t` (aware); aware UTC, or None if it never fires again."""
        rule = self._rule
        if rule is None:
            return None
        return rule.next_after(t)


def parse_schedule(
    spec: str, *, timezone: str = "", job_name: str = "", anchor: datetime | None = None
) -> Schedule:
    """Parse any schedule form (see the module docstring); ScheduleError names the problem."""
    text = spec.strip()
    if not text:
        raise ScheduleError("empty schedule")
    tz = timezone
    if text.startswith(("TZ=", "CRON_TZ=")):
        head, _, rest = text.partition(" ")
        tz = head.partition("=")[2]
        text = rest.strip()
        if not tz:
            raise ScheduleError(f"empty timezone in {head!r}")
        if not text:
            raise ScheduleError(f"nothing follows the {head!r} prefix")
    zone = timeline(tz)
    if text[0] == "@":
        return _parse_at_form(spec, text, tz, zone, anchor)
    if "~" in text:
        text = _apply_hash(text, job_name)
    parts = text.split()
    if len(parts) == 5:
        parts.insert(0, "0")
    elif len(parts) != 6:
        raise ScheduleError(
            f"expected 6 fields (sec min hour dom month dow) or 5, got {len(parts)} in {text!r}"
        )
    return Schedule(ScheduleKind.CRON, spec, tz, _cron_rule(parts, zone))


def _cron_rule(parts: list[str], zone: ZoneTimeline) -> CronRule:
    fields = tuple(parse_field(f, p) for f, p in zip(_FIELDS, parts, strict=True))
    if not fires_ever(fields[4], fields[3], fields[5]):
        raise ScheduleError(f"day-of-month {parts[3]!r} never occurs in month {parts[4]!r}")
    return CronRule.build(fields, zone)


def _apply_hash(text: str, job_name: str) -> str:
    parts = text.split()
    fields = _FIELDS[1:] if len(parts) == 5 else _FIELDS
    total = sum(ord(c) for c in job_name)
    out = []
    for field, part in zip(fields, parts, strict=False):
        modulo, base = HASH_RANGES[field]
        out.append(part.replace("~", str(total % modulo + base)))
    return " ".join(out + parts[len(fields) :])


def _parse_at_form(
    spec: str, text: str, tz: str, zone: ZoneTimeline, anchor: datetime | None
) -> Schedule:
    word, _, arg = text.partition(" ")
    arg = arg.strip()
    cron = _DESCRIPTORS.get(word.lower())
    if cron is not None:
        if arg:
            raise ScheduleError(f"unexpected {arg!r} after {word}")
        return Schedule(ScheduleKind.CRON, spec, tz, _cron_rule(cron.split(), zone))
    if word == "@every":
        return Schedule(ScheduleKind.EVERY, spec, tz, EveryRule(_interval(arg), _anchor(anchor)))
    if word == "@at":
        return Schedule(ScheduleKind.AT, spec, tz, AtRule(_instant(arg)))
    if word == "@manually":
        if arg:
            raise ScheduleError(f"unexpected {arg!r} after @manually")
        return Schedule(ScheduleKind.MANUAL, spec, tz, None)
    raise ScheduleError(f"unknown descriptor {word!r}")


def _interval(arg: str) -> timedelta:
    if not arg:
        raise ScheduleError("@every needs a duration, e.g. '@every 1h30m'")
    try:
        interval = parse_go_duration(arg)
    except DurationError as exc:
        raise ScheduleError(f"@every: {exc}") from exc
    if interval <= timedelta(0):
        raise ScheduleError(f"@every duration must be positive, got {arg!r}")
    return max(interval // _SECOND * _SECOND, _SECOND)


def _anchor(anchor: datetime | None) -> datetime:
    if anchor is None:
        return _EPOCH
    if anchor.tzinfo is None:
        raise ScheduleError("@every anchor must be a timezone-aware datetime")
    return anchor.astimezone(UTC)


def _instant(arg: str) -> datetime:
    if not _RFC3339.fullmatch(arg):
        raise ScheduleError(f"@at needs an RFC3339 time such as 2025-12-31T23:59:00Z, got {arg!r}")
    try:
        return datetime.fromisoformat(arg.upper()).astimezone(UTC)
    except ValueError as exc:
        raise ScheduleError(f"@at time {arg!r}: {exc}") from exc
