"""Job schedules: every Dkron schedule form, and the next fire time (pure).

Forms (dkron-reference.md §B, plus 5-field crontab lines):

- 6-field cron, seconds first: `sec min hour dom month dow` with `* ? , - /` (`N/step`
  = `N-max/step`; robfig takes `?` as `*` in any field), month and weekday names
  (case-insensitive), weekday 0-6 and 7 = Sunday. A 5-field line is a
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
   occurrence (`0 30 2 * * *` fires at 02:30 CEST, not again at 02:30 CET), also when
   asked from inside the second pass.

Why the hour field decides: "02:30 every day" means once a day, so the clock time wins;
"every 15 minutes" (or every hour) means a rhythm, so elapsed time wins. A spec such as
`0 */20 2 * * *` names an hour and so runs 02:00, 02:20, 02:40 once each.

The rules do not assume whole-hour shifts: Australia/Lord_Howe moves by 30 minutes (gap
02:00-02:30, repeated range 01:30-02:00) and the same three rules apply to those ranges,
as they do to a skipped day (Pacific/Apia, 30 Dec 2011: that day's times fire once at
its end, 31 Dec 00:00).

Parsed cron schedules, field tokens, zone transitions and calendar facts are memoized
(bounded), so a fleet of similar jobs parses mostly from dictionaries.
"""

import re
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import attrs

from dkron_trio.durations import DurationError, parse_go_duration
from dkron_trio.schedule_base import Schedule, ScheduleError, ScheduleKind
from dkron_trio.schedule_cron import CronSchedule
from dkron_trio.schedule_fields import FIELDS, HASH_RANGES, cron_tables
from dkron_trio.schedule_zone import ZoneTimeline, timeline

__all__ = ["Schedule", "ScheduleError", "ScheduleKind", "parse_schedule"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
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
# Parsed cron schedules by (spec, timezone, job name if the spec hashes): a fleet shares
# a few hundred specs. Bounded; cleared when full.
_CACHE: dict[tuple[str, ...], Schedule] = {}
_CACHE_LIMIT = 1 << 17
_INTERVALS: dict[str, timedelta] = {}  # `@every` argument -> interval


@attrs.frozen
class EverySchedule(Schedule):
    """`@every`: a fixed interval from an anchor instant."""

    kind: ClassVar[ScheduleKind] = ScheduleKind.EVERY
    interval: timedelta
    anchor: datetime

    def next_after(self, t: datetime) -> datetime | None:
        if t < self.anchor:
            return self.anchor
        try:
            return self.anchor + ((t - self.anchor) // self.interval + 1) * self.interval
        except OverflowError:  # past year 9999
            return None


@attrs.frozen
class AtSchedule(Schedule):
    """`@at`: one instant."""

    kind: ClassVar[ScheduleKind] = ScheduleKind.AT
    at: datetime

    def next_after(self, t: datetime) -> datetime | None:
        return self.at if self.at > t else None


@attrs.frozen
class ManualSchedule(Schedule):
    """`@manually`: runs only when asked."""

    kind: ClassVar[ScheduleKind] = ScheduleKind.MANUAL

    def next_after(self, t: datetime) -> None:
        return None


def parse_schedule(
    spec: str, *, timezone: str = "", job_name: str = "", anchor: datetime | None = None
) -> Schedule:
    """Parse any schedule form (see the module docstring); ScheduleError names the problem."""
    hashed = "~" in spec
    key = (spec, timezone, job_name) if hashed else (spec, timezone)
    found = _CACHE.get(key)
    if found is not None:
        return found
    parts = spec.split()
    if not parts:
        raise ScheduleError("empty schedule")
    tz = timezone
    if parts[0].startswith(("TZ=", "CRON_TZ=")):
        head = parts.pop(0)
        tz = head.partition("=")[2]
        if not tz:
            raise ScheduleError(f"empty timezone in {head!r}")
        if not parts:
            raise ScheduleError(f"nothing follows the {head!r} prefix")
    zone = timeline(tz)
    if parts[0][0] == "@":
        return _parse_at_form(key, parts, tz, zone, anchor)
    if hashed:
        parts = _apply_hash(parts, job_name)
    if len(parts) == 5:
        parts.insert(0, "0")
    elif len(parts) != 6:
        raise ScheduleError(
            f"expected 6 fields (sec min hour dom month dow) or 5, got {len(parts)}"
            f" in {' '.join(parts)!r}"
        )
    return _cron(key, spec, tz, parts, zone)


def _cron(
    key: tuple[str, ...], spec: str, tz: str, parts: list[str], zone: ZoneTimeline
) -> Schedule:
    tables = cron_tables(parts)
    if tables is None:
        raise ScheduleError(f"day-of-month {parts[3]!r} never occurs in month {parts[4]!r}")
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()
    found = _CACHE[key] = CronSchedule(spec, tz, tables, zone)
    return found


def _apply_hash(parts: list[str], job_name: str) -> list[str]:
    fields = FIELDS[1:] if len(parts) == 5 else FIELDS
    total = sum(ord(c) for c in job_name)
    out = []
    for field, part in zip(fields, parts, strict=False):
        modulo, base = HASH_RANGES[field]
        out.append(part.replace("~", str(total % modulo + base)))
    return out + parts[len(fields) :]


def _parse_at_form(
    key: tuple[str, ...], parts: list[str], tz: str, zone: ZoneTimeline, anchor: datetime | None
) -> Schedule:
    spec = key[0]
    word = parts[0]
    arg = " ".join(parts[1:])
    cron = _DESCRIPTORS.get(word.lower())
    if cron is not None:
        if arg:
            raise ScheduleError(f"unexpected {arg!r} after {word}")
        return _cron(key, spec, tz, cron.split(), zone)
    if word == "@every":
        return EverySchedule(spec, tz, _interval(arg), _anchor(anchor))
    if word == "@at":
        return AtSchedule(spec, tz, _instant(arg))
    if word == "@manually":
        if arg:
            raise ScheduleError(f"unexpected {arg!r} after @manually")
        return ManualSchedule(spec, tz)
    raise ScheduleError(f"unknown descriptor {word!r}")


def _interval(arg: str) -> timedelta:
    found = _INTERVALS.get(arg)
    if found is not None:
        return found
    if not arg:
        raise ScheduleError("@every needs a duration, e.g. '@every 1h30m'")
    try:
        interval = parse_go_duration(arg)
    except DurationError as exc:
        raise ScheduleError(f"@every: {exc}") from exc
    if interval <= timedelta(0):
        raise ScheduleError(f"@every duration must be positive, got {arg!r}")
    found = max(interval // _SECOND * _SECOND, _SECOND)
    if len(_INTERVALS) >= _CACHE_LIMIT:
        _INTERVALS.clear()
    _INTERVALS[arg] = found
    return found


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
