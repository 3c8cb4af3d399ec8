"""The cron next-fire search: wall-clock matching on integers, then the DST walk.

Wall times and instants are integer seconds (wall = instant + UTC offset), so the hot
path is integer arithmetic, small-table look-ups and one bitmask per month for the days.
The DST rules themselves are stated in schedule.py's docstring; `CronRule.next_instant`
implements them segment by segment (a segment = a stretch of constant UTC offset).
"""

from bisect import bisect_right
from datetime import UTC, date, datetime, timedelta

import attrs

from dkron_trio.schedule_fields import ParsedField
from dkron_trio.schedule_zone import CHUNK, MAX_SHIFT, ZoneTimeline

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORD = date(1970, 1, 1).toordinal()
_SECOND = timedelta(seconds=1)
_FIRST_WALL = (1 - _EPOCH_ORD) * 86400  # 0001-01-01T00:00:00 as wall seconds
_MAX_INSTANT = (date(9999, 12, 31).toordinal() - _EPOCH_ORD) * 86400 + 86399
_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_LEN_MASK = tuple(((1 << (n + 1)) - 1) & ~1 for n in range(32))  # bits 1..n
_ALL_HOURS = (1 << 24) - 1

# (year * 16 + month) -> (weekday of the 1st with Sunday = 0, length, ordinal of the 1st)
_MONTHS: dict[int, tuple[int, int, int]] = {}


def _month(year: int, month: int) -> tuple[int, int, int]:
    first = date(year, month, 1)
    length = _DAYS_IN_MONTH[month]
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        length = 29
    info = _MONTHS[year * 16 + month] = ((first.weekday() + 1) % 7, length, first.toordinal())
    return info


_SPREADS: dict[int, tuple[int, ...]] = {}


def _dow_spread(dow_mask: int) -> tuple[int, ...]:
    """For each weekday of the 1st (Sunday = 0), the days 1..31 falling on allowed weekdays."""
    found = _SPREADS.get(dow_mask)
    if found is None:
        found = _SPREADS[dow_mask] = tuple(
            sum(1 << d for d in range(1, 32) if dow_mask >> ((first + d - 1) % 7) & 1)
            for first in range(7)
        )
    return found


def fires_ever(months: ParsedField, dom: ParsedField, dow: ParsedField) -> bool:
    """False when the day fields can never match (e.g. `30 2`: February 30th)."""
    if dom.star or not dow.star:
        return True  # any weekday occurs in every month
    return any(
        months.mask >> m & 1 and dom.mask & _LEN_MASK[29 if m == 2 else _DAYS_IN_MONTH[m]]
        for m in range(1, 13)
    )


@attrs.frozen
class CronRule:
    """A parsed 6-field cron spec bound to its timezone's timeline."""

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    dom: int
    dow_spread: tuple[int, ...]
    day_or: bool  # robfig: both day fields restricted -> either matches
    hour_full: bool  # every hour allowed: repeated hours fire on both passes
    zone: ZoneTimeline

    @classmethod
    def build(cls, fields: tuple[ParsedField, ...], zone: ZoneTimeline) -> "CronRule":
        sec, minute, hour, dom, month, dow = fields
        return cls(
            sec.table,
            minute.table,
            hour.table,
            month.table,
            dom.mask,
            _dow_spread(dow.mask),
            not dom.star and not dow.star,
            hour.mask == _ALL_HOURS,
            zone,
        )

    def next_after(self, t: datetime) -> datetime | None:
        """First fire strictly after `t` (aware), as aware UTC; None past year 9999."""
        if t.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        found = self.next_instant((t - _EPOCH) // _SECOND + 1)
        if found is None or found > _MAX_INSTANT:
            return None
        return _EPOCH + timedelta(seconds=found)

    def next_instant(self, s0: int) -> int | None:
        """First fire at or after Unix second `s0`, by the rules of schedule.py."""
        tl = self.zone
        k = s0 // CHUNK
        c = tl.chunk(k)
        trans = c.transitions
        i = bisect_right(trans, s0)
        o = c.offsets[i - 1] if i else c.before
        lo = s0 + o
        if not self.hour_full:
            lo = max(lo, self._first_pass_end(s0, k, i, o))
        w = self.next_wall(lo)
        while w is not None:
            if i == len(trans):
                end = (k + 1) * CHUNK
                if w < end + o:
                    return w - o
                k += 1
                c = tl.chunk(k)
                trans = c.transitions
                i = 0
                continue
            end = trans[i]
            if w < end + o:
                return w - o
            o2 = c.offsets[i]
            if o2 > o:  # a gap: wall times in it fire once, when it ends
                if w < end + o2:
                    return end
            elif self.hour_full:  # a repeated range: its second pass fires too
                w = self.next_wall(end + o2)
            o = o2
            i += 1
        return None

    def _first_pass_end(self, s0: int, k: int, i: int, o: int) -> int:
        """If s0 lies in the second pass of a repeated range, the wall time that pass ends.

        Called for specific-hour specs only: they fired on the first pass. Returns a value
        <= s0 + o when there is nothing to skip.
        """
        c = self.zone.chunk(k)
        if i:
            start = c.transitions[i - 1]
            prev = c.offsets[i - 2] if i >= 2 else c.before
        elif s0 - k * CHUNK < MAX_SHIFT:
            p = self.zone.chunk(k - 1)
            if not p.transitions:
                return s0 + o
            start = p.transitions[-1]
            prev = p.offsets[-2] if len(p.transitions) >= 2 else p.before
        else:
            return s0 + o
        return start + prev if prev > o else s0 + o

    def next_wall(self, lo: int) -> int | None:
        """Smallest matching wall time >= lo (wall seconds), ignoring DST; None past 9999."""
        lo = max(lo, _FIRST_WALL)
        days, sod = divmod(lo, 86400)
        day0 = date.fromordinal(days + _EPOCH_ORD)
        y = day0.year
        mo = day0.month
        d = day0.day
        h, rest = divmod(sod, 3600)
        mi, s = divmod(rest, 60)
        secs = self.seconds
        mins = self.minutes
        hours = self.hours
        months = self.months
        dom = self.dom
        spread = self.dow_spread
        day_or = self.day_or
        months_cache = _MONTHS
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
            info = months_cache.get(y * 16 + mo) or _month(y, mo)
            first, length, ordinal = info
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
            step = (mask & -mask).bit_length() - 1
            if step:
                d += step
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
            return (ordinal + d - 1 - _EPOCH_ORD) * 86400 + h * 3600 + mi * 60 + s2
