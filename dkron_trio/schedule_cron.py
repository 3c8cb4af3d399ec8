"""The cron next-fire search: wall-clock matching on integers, then the DST walk.

Wall times and instants are integer seconds (wall = instant + UTC offset), so the hot
path is integer arithmetic on bitmasks: the next allowed value >= x of a field is x plus
the index of the lowest set bit of `mask >> x`; the days of a month are one mask too.
The DST rules themselves are stated in schedule.py's docstring; `CronSchedule.next_after`
implements them segment by segment (a segment = a stretch of constant UTC offset).
"""

from datetime import UTC, date, datetime
from typing import Any, ClassVar

import attrs

from dkron_trio.schedule_base import Schedule, ScheduleKind
from dkron_trio.schedule_fields import LEN_MASK as _LEN_MASK
from dkron_trio.schedule_fields import Tables
from dkron_trio.schedule_zone import ZoneTimeline

_EPOCH_ORD = date(1970, 1, 1).toordinal()
_FIRST_WALL = (1 - _EPOCH_ORD) * 86400  # 0001-01-01T00:00:00 as wall seconds
_MAX_INSTANT = (date(9999, 12, 31).toordinal() - _EPOCH_ORD) * 86400 + 86399
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_CACHE_LIMIT = 1 << 17

# Memo of calendar facts, bounded (cleared when full): year * 16 + month -> (weekday of
# the 1st with Sunday = 0, length, days since the epoch of the 1st); days since the epoch
# -> (year, month, day, and the first two of its month's facts).
_DAYS: dict[int, tuple[int, int, int, int, int]] = {}
_MONTHS: dict[int, tuple[int, int, int]] = {}


def _day(days: int) -> tuple[int, int, int, int, int]:
    d = date.fromordinal(days + _EPOCH_ORD)
    first, length, _ = _MONTHS.get(d.year * 16 + d.month) or _month(d.year, d.month)
    if len(_DAYS) >= _CACHE_LIMIT:
        _DAYS.clear()
    found = _DAYS[days] = (d.year, d.month, d.day, first, length)
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


# Results by Unix second, bounded: cron fires cluster on round instants, and a datetime
# from a dictionary is cheaper than a new one.
_INSTANTS: dict[int, datetime] = {}


def _instant(w: int) -> datetime | None:
    if w > _MAX_INSTANT:
        return None
    if len(_INSTANTS) >= 4096:
        _INSTANTS.clear()
    found = _INSTANTS[w] = datetime.fromtimestamp(w, UTC)
    return found


_last_asked: tuple[Any, int] = (None, 0)
"""The last instant asked about (the object itself) and its first whole second after."""


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
        global _last_asked  # a memo, replaced whole (one atomic store)
        last = _last_asked
        if t is last[0]:  # a batch asks about one instant for many schedules
            s0: int = last[1]
        else:
            if t.tzinfo is None:
                raise ValueError("next_after needs an aware datetime")
            ts = t.timestamp()
            s0 = int(ts) + 1 if ts >= 0 else int(ts // 1) + 1  # first whole second > t
            _last_asked = (t, s0)
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
                return _INSTANTS.get(w) or _instant(w)
            after = seg.after
            if after > o:
                if w < end + after:
                    return _INSTANTS.get(end) or _instant(end)
            elif after < o and hour_full:
                w = self.next_wall(end + after)
            seg = zone.following(seg)
            o = seg.offset
        return None

    def next_wall(self, lo: int) -> int | None:
        """Smallest matching wall time >= lo (wall seconds), ignoring DST; None past 9999.

        The start day is tried first (the rest of its time of day), then the following
        days of its month, then the following months; any day after the start day fires
        at the spec's first time of day.
        """
        secs, mins, hours, months, dom, spread, day_or, _, first_s, first_ms, first_tod = (
            self.tables
        )
        if lo < _FIRST_WALL:  # noqa: PLR1730 - max() is a call, and this is the hot path
            lo = _FIRST_WALL
        days = lo // 86400
        y, mo, d, first, length = _DAYS.get(days) or _day(days)
        if months >> mo & 1:
            if day_or:
                day_mask = (dom | spread[first]) & _LEN_MASK[length]
            else:
                day_mask = dom & spread[first] & _LEN_MASK[length]
            if day_mask >> d & 1:
                sod = lo - days * 86400
                h = sod // 3600
                tod = -1
                if hours >> h & 1:
                    rest = sod - h * 3600
                    mi = rest // 60
                    if mins >> mi & 1:
                        m = secs >> (rest - mi * 60)
                        if m:
                            tod = sod + (m & -m).bit_length() - 1
                    if tod < 0:
                        m = mins >> (mi + 1)
                        if m:
                            tod = h * 3600 + (mi + (m & -m).bit_length()) * 60 + first_s
                if tod < 0:
                    m = hours >> (h + 1)
                    if m:
                        tod = (h + (m & -m).bit_length()) * 3600 + first_ms
                if tod >= 0:
                    return days * 86400 + tod
            m = day_mask >> (d + 1)
            if m:
                return (days + (m & -m).bit_length()) * 86400 + first_tod
        while True:
            mo += 1
            m = months >> mo
            if m:
                mo += (m & -m).bit_length() - 1
            else:
                y += 1
                if y > 9999:
                    return None
                mo = (months & -months).bit_length() - 1
            first, length, base = _MONTHS.get(y * 16 + mo) or _month(y, mo)
            if day_or:
                m = (dom | spread[first]) & _LEN_MASK[length]
            else:
                m = dom & spread[first] & _LEN_MASK[length]
            if m:
                return (base + (m & -m).bit_length() - 2) * 86400 + first_tod
