"""The cron next-fire search: wall-clock matching on integers, then the DST walk.

Wall times and instants are integer seconds (wall = instant + UTC offset), so the hot
path is integer arithmetic, small-table look-ups and one bitmask per month for the days.
The DST rules themselves are stated in schedule.py's docstring; `CronSchedule.next_after`
implements them segment by segment (a segment = a stretch of constant UTC offset).
"""

from datetime import UTC, date, datetime
from typing import ClassVar

import attrs

from dkron_trio.schedule_base import Schedule, ScheduleKind
from dkron_trio.schedule_fields import ParsedField
from dkron_trio.schedule_zone import ZoneTimeline

_EPOCH_ORD = date(1970, 1, 1).toordinal()
_FIRST_WALL = (1 - _EPOCH_ORD) * 86400  # 0001-01-01T00:00:00 as wall seconds
_MAX_INSTANT = (date(9999, 12, 31).toordinal() - _EPOCH_ORD) * 86400 + 86399
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_LEN_MASK = tuple(((1 << (n + 1)) - 1) & ~1 for n in range(32))  # bits 1..n
_ALL_HOURS = (1 << 24) - 1
_LONG_MONTHS = sum(1 << m for m in (1, 3, 5, 7, 8, 10, 12))
_CACHE_LIMIT = 1 << 17

# Memo of calendar facts, bounded (cleared when full): days since the epoch -> (year,
# month, day), and year * 16 + month -> (weekday of the 1st with Sunday = 0, length,
# days since the epoch of the 1st).
_DAYS: dict[int, tuple[int, int, int]] = {}
_MONTHS: dict[int, tuple[int, int, int]] = {}


def _day(days: int) -> tuple[int, int, int]:
    d = date.fromordinal(days + _EPOCH_ORD)
    if len(_DAYS) >= _CACHE_LIMIT:
        _DAYS.clear()
    found = _DAYS[days] = (d.year, d.month, d.day)
    return found


def _month(year: int, month: int) -> tuple[int, int, int]:
    first = date(year, month, 1)
    length = _DAYS_IN_MONTH[month]
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        length = 29
    if len(_MONTHS) >= _CACHE_LIMIT:
        _MONTHS.clear()
    found = _MONTHS[year * 16 + month] = (
        (first.weekday() + 1) % 7,
        length,
        first.toordinal() - _EPOCH_ORD,
    )
    return found


Tables = tuple[
    tuple[int, ...],
    tuple[int, ...],
    tuple[int, ...],
    tuple[int, ...],
    int,
    tuple[int, ...],
    bool,
    bool,
]


def build_tables(fields: tuple[ParsedField, ...]) -> Tables | None:
    """Search tables for six parsed fields; None when the days never occur (Feb 30th).

    (seconds, minutes, hours, months next-tables, day-of-month mask, weekday spread,
    day_or, hour_full); one tuple because the search unpacks it in one step.
    """
    sec, minute, hour, dom, month, dow = fields
    if not dom.star and dow.star:
        longest = 31 if month.mask & _LONG_MONTHS else 30 if month.mask & ~4 else 29
        if not dom.mask & _LEN_MASK[longest]:
            return None
    # robfig: when both day fields are restricted, either one matching is enough
    day_or = not dom.star and not dow.star
    hour_full = hour.mask == _ALL_HOURS  # repeated hours fire on both passes
    return (
        sec.table,
        minute.table,
        hour.table,
        month.table,
        dom.mask,
        dow.table,
        day_or,
        hour_full,
    )


@attrs.frozen
class CronSchedule(Schedule):
    """A cron spec (or descriptor) bound to its timezone's timeline."""

    kind: ClassVar[ScheduleKind] = ScheduleKind.CRON
    tables: Tables
    zone: ZoneTimeline

    def next_after(self, t: datetime) -> datetime | None:
        """First fire strictly after `t` (aware), as aware UTC; None past year 9999.

        Walks the zone's segments from the one holding t: a wall time w in a segment of
        offset o is the instant w - o; at a gap's end the gap's own wall times fire (once,
        at the gap's end); at a repeated range only hour-wildcard specs go back.
        """
        if t.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        ts = t.timestamp()
        s0 = int(ts) + 1 if ts >= 0 else -int(-ts // 1) + 1
        zone = self.zone
        seg = zone.segment(s0)
        o = seg.offset
        lo = s0 + o
        hour_full = self.tables[7]
        if not hour_full and seg.before > o and lo < seg.start + seg.before:
            lo = seg.start + seg.before  # the second pass of a repeated range: fired before
        w = self.next_wall(lo)
        while w is not None:
            end = seg.end
            if w < end + o:
                w -= o
                return None if w > _MAX_INSTANT else datetime.fromtimestamp(w, UTC)
            after = seg.after
            if after > o:
                if w < end + after:
                    return datetime.fromtimestamp(end, UTC)
            elif after < o and hour_full:
                w = self.next_wall(end + after)
            seg = zone.following(seg)
            o = seg.offset
        return None

    def next_wall(self, lo: int) -> int | None:
        """Smallest matching wall time >= lo (wall seconds), ignoring DST; None past 9999."""
        secs, mins, hours, months, dom, spread, day_or, _ = self.tables
        if lo < _FIRST_WALL:  # noqa: PLR1730 - max() is a call, and this is the hot path
            lo = _FIRST_WALL
        days = lo // 86400
        sod = lo - days * 86400
        y, mo, d = _DAYS.get(days) or _day(days)
        h = sod // 3600
        sod -= h * 3600
        mi = sod // 60
        s = sod - mi * 60
        while True:
            m2 = months[mo]
            if m2 != mo:
                if m2 < 0:
                    y += 1
                    if y > 9999:
                        return None
                    mo = months[1]
                else:
                    mo = m2
                d = 1
                h = mi = s = 0
            first, length, base = _MONTHS.get(y * 16 + mo) or _month(y, mo)
            if day_or:
                mask = (dom | spread[first]) & _LEN_MASK[length]
            else:
                mask = dom & spread[first] & _LEN_MASK[length]
            mask >>= d
            if not mask:
                mo += 1
                d = 1
                h = mi = s = 0
                continue
            if not mask & 1:
                d += (mask & -mask).bit_length() - 1
                h = mi = s = 0
            h2 = hours[h]
            if h2 < 0:
                d += 1
                h = mi = s = 0
                continue
            if h2 != h:
                h = h2
                mi = s = 0
            m2 = mins[mi]
            if m2 < 0:
                h += 1
                mi = s = 0
                continue
            if m2 != mi:
                mi = m2
                s = 0
            s2 = secs[s]
            if s2 < 0:
                mi += 1
                s = 0
                continue
            return (base + d - 1) * 86400 + h * 3600 + mi * 60 + s2
