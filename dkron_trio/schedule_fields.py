"""Cron fields: one field's text to a bitmask, and the tuple the next-fire search reads.

Parsing follows robfig/cron v3 (Dkron's parser): `*`, `?`, `a-b`, `a/n` (= `a-max/n`),
`a-b/n`, `*/n`, comma lists, month and weekday names (case-insensitive). A field counts
as *star* (unrestricted, for the day-of-month/day-of-week rule) when one of its parts is
`*` or `?` with a step of 1, exactly as robfig's star bit. Weekday 7 is tolerated as Sunday.

Results are memoized per (field, text): specs of a fleet reuse the same few hundred
tokens, so parsing a new spec is mostly six dictionary look-ups. The search reads each
field as a bitmask (bit v set = value v allowed).
"""

import enum
from collections.abc import Mapping

import attrs

from dkron_trio.schedule_base import ScheduleError

_MONTH_NAMES = {
    name: i + 1
    for i, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}
_DOW_NAMES = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}


class Field(enum.Enum):
    """The six cron fields, in Dkron's order (seconds first)."""

    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"
    DAY_OF_MONTH = "day-of-month"
    MONTH = "month"
    DAY_OF_WEEK = "day-of-week"


@attrs.frozen
class _Bounds:
    low: int
    high: int  # highest value a `*` or `a/n` reaches
    high_explicit: int  # highest value one may write (7 for day-of-week)
    names: Mapping[str, int]


_BOUNDS = {
    Field.SECOND: _Bounds(0, 59, 59, {}),
    Field.MINUTE: _Bounds(0, 59, 59, {}),
    Field.HOUR: _Bounds(0, 23, 23, {}),
    Field.DAY_OF_MONTH: _Bounds(1, 31, 31, {}),
    Field.MONTH: _Bounds(1, 12, 12, _MONTH_NAMES),
    Field.DAY_OF_WEEK: _Bounds(0, 6, 7, _DOW_NAMES),
}

# Hash (`~`) ranges, Dkron's rule: value = sum of the job name's code points mod range + base.
HASH_RANGES = {
    Field.SECOND: (60, 0),
    Field.MINUTE: (60, 0),
    Field.HOUR: (24, 0),
    Field.DAY_OF_MONTH: (28, 1),
    Field.MONTH: (12, 1),
    Field.DAY_OF_WEEK: (7, 0),
}


@attrs.frozen
class ParsedField:
    """One parsed field: allowed values as a bitmask, robfig's star flag, for the
    day-of-week field its `dow_spread` (empty for the others), and its smallest value."""

    mask: int
    star: bool
    spread: tuple[int, ...]
    low: int  # the smallest allowed value


_SPREADS: dict[int, tuple[int, ...]] = {}


def dow_spread(dow_mask: int) -> tuple[int, ...]:
    """For each weekday of a month's 1st (Sunday = 0): its days 1..31 on allowed weekdays."""
    found = _SPREADS.get(dow_mask)
    if found is not None:
        return found
    week = [d for d in range(7) if dow_mask >> d & 1]
    out = []
    for first in range(7):
        days = 0
        for d in week:
            for day in range((d - first) % 7 + 1, 32, 7):
                days |= 1 << day
        out.append(days)
    found = _SPREADS[dow_mask] = tuple(out)
    return found


def _value(field: Field, bounds: _Bounds, text: str, whole: str) -> int:
    named = bounds.names.get(text.lower())
    if named is not None:
        return named
    if not text.isdigit() or not text.isascii():
        raise ScheduleError(f"{field.value} field {whole!r}: {text!r} is not a number")
    value = int(text)
    if value < bounds.low:
        raise ScheduleError(
            f"{field.value} field {whole!r}: {value} is below the minimum {bounds.low}"
        )
    if value > bounds.high_explicit:
        raise ScheduleError(
            f"{field.value} field {whole!r}: {value} is above the maximum {bounds.high_explicit}"
        )
    return value


def _part(field: Field, bounds: _Bounds, part: str, whole: str) -> tuple[int, bool]:
    if not part:
        raise ScheduleError(f"{field.value} field {whole!r}: empty list element")
    range_and_step = part.split("/")
    if len(range_and_step) > 2:
        raise ScheduleError(f"{field.value} field {whole!r}: too many slashes in {part!r}")
    low_high = range_and_step[0].split("-")
    star = False
    if low_high[0] in ("*", "?"):
        if len(low_high) != 1:
            raise ScheduleError(f"{field.value} field {whole!r}: a range cannot start with '*'")
        start, end, star = bounds.low, bounds.high, True
    elif len(low_high) == 1:
        start = end = _value(field, bounds, low_high[0], whole)
    elif len(low_high) == 2:
        start = _value(field, bounds, low_high[0], whole)
        end = _value(field, bounds, low_high[1], whole)
    else:
        raise ScheduleError(f"{field.value} field {whole!r}: too many hyphens in {part!r}")
    step = 1
    if len(range_and_step) == 2:
        step_text = range_and_step[1]
        if not step_text.isdigit() or not step_text.isascii():
            raise ScheduleError(
                f"{field.value} field {whole!r}: step {step_text!r} is not a number"
            )
        step = int(step_text)
        if step == 0:
            raise ScheduleError(f"{field.value} field {whole!r}: step must be positive")
        if len(low_high) == 1 and not star:
            end = bounds.high  # robfig: "N/step" means "N-max/step"
        if step > 1:
            star = False
    if start > end:
        raise ScheduleError(
            f"{field.value} field {whole!r}: beginning of range ({start}) beyond end ({end})"
        )
    mask = 0
    for v in range(start, end + 1, step):
        mask |= 1 << v
    return mask, star


_MEMO: dict[Field, dict[str, ParsedField]] = {f: {} for f in Field}
_MEMO_LIMIT = 65536
_SEC, _MIN, _HOUR, _DOM, _MON, _DOW = _MEMO.values()
FIELDS = tuple(Field)


def _parse_new(field: Field, text: str) -> ParsedField:
    """Parse one field's text (a memo miss); ScheduleError names the field and the value."""
    bounds = _BOUNDS[field]
    mask = 0
    star = False
    for part in text.split(","):
        if part.isdigit() and part.isascii() and bounds.low <= int(part) <= bounds.high_explicit:
            mask |= 1 << int(part)
            continue
        m, s = _part(field, bounds, part, text)
        mask |= m
        star = star or s
    spread: tuple[int, ...] = ()
    if field is Field.DAY_OF_WEEK:
        if mask >> 7:
            mask = (mask | 1) & 0x7F  # 7 is Sunday
        spread = dow_spread(mask)
    parsed = ParsedField(mask, star, spread, (mask & -mask).bit_length() - 1)
    memo = _MEMO[field]
    if len(memo) < _MEMO_LIMIT:
        memo[text] = parsed
    return parsed


Tables = tuple[int, int, int, int, int, tuple[int, ...], bool, bool, int, int, int]
LEN_MASK = tuple(((1 << (n + 1)) - 1) & ~1 for n in range(32))  # bits 1..n
_ALL_HOURS = (1 << 24) - 1
_LONG_MONTHS = sum(1 << m for m in (1, 3, 5, 7, 8, 10, 12))


def cron_tables(parts: list[str]) -> Tables | None:
    """Search tables for six field texts (seconds first); None when the days never occur
    (e.g. `0 0 0 30 2 *`, February 30th).

    (second, minute, hour, month, day-of-month masks, weekday spread, day_or, hour_full,
    then the first second, minute * 60 + second and time of day the spec allows): one
    tuple, which the search unpacks in one step. A fleet's common tokens are dictionary
    hits.
    """
    p0, p1, p2, p3, p4, p5 = parts
    sec = _SEC.get(p0) or _parse_new(Field.SECOND, p0)
    minute = _MIN.get(p1) or _parse_new(Field.MINUTE, p1)
    hour = _HOUR.get(p2) or _parse_new(Field.HOUR, p2)
    dom = _DOM.get(p3) or _parse_new(Field.DAY_OF_MONTH, p3)
    month = _MON.get(p4) or _parse_new(Field.MONTH, p4)
    dow = _DOW.get(p5) or _parse_new(Field.DAY_OF_WEEK, p5)
    first_s = sec.low
    first_ms = minute.low * 60 + first_s
    if not dom.star and dow.star:
        longest = 31 if month.mask & _LONG_MONTHS else 30 if month.mask & ~4 else 29
        if not dom.mask & LEN_MASK[longest]:
            return None
    return (
        sec.mask,
        minute.mask,
        hour.mask,
        month.mask,
        dom.mask,
        dow.spread,
        not dom.star and not dow.star,  # robfig: both restricted -> either day matches
        hour.mask == _ALL_HOURS,  # every hour allowed: repeated hours fire on both passes
        first_s,
        first_ms,
        hour.low * 3600 + first_ms,
    )
