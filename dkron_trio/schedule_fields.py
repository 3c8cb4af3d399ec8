"""Cron fields: one field's text to a bitmask, plus the tables the next-fire search walks.

Parsing follows robfig/cron v3 (Dkron's parser): `*`, `?`, `a-b`, `a/n` (= `a-max/n`),
`a-b/n`, `*/n`, comma lists, month and weekday names (case-insensitive). A field counts
as *star* (unrestricted, for the day-of-month/day-of-week rule) when one of its parts is
`*` or `?` with a step of 1, exactly as robfig's star bit. Weekday 7 is tolerated as Sunday.

Results are memoized per (field, text): specs of a fleet reuse the same few hundred
tokens, so parsing a new spec is mostly six dictionary look-ups.
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
    """One parsed field: allowed values as a bitmask, robfig's star flag, and `table`.

    `table` is what the search reads: for second, minute, hour and month the `next_table`
    of the mask; for day-of-week the `dow_spread`; empty for day-of-month (it uses the mask).
    """

    mask: int
    star: bool
    table: tuple[int, ...]


def next_table(mask: int, high: int) -> tuple[int, ...]:
    """Table t with t[i] = smallest allowed value >= i, or -1; indices 0..high+1.

    The extra index lets the search step one past the top (minute 60, hour 24) and read -1.
    """
    out: list[int] = []
    while mask:
        low = mask & -mask
        v = low.bit_length() - 1
        out += [v] * (v + 1 - len(out))
        mask ^= low
    out += [-1] * (high + 2 - len(out))
    return tuple(out)


def dow_spread(dow_mask: int) -> tuple[int, ...]:
    """For each weekday of a month's 1st (Sunday = 0): its days 1..31 on allowed weekdays."""
    week = [d for d in range(7) if dow_mask >> d & 1]
    out = []
    for first in range(7):
        days = 0
        for d in week:
            for day in range((d - first) % 7 + 1, 32, 7):
                days |= 1 << day
        out.append(days)
    return tuple(out)


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
_MEMOS = tuple(_MEMO.values())
_SEC, _MIN, _HOUR, _DOM, _MON, _DOW = _MEMOS
FIELDS = tuple(Field)


def parse_field(field: Field, text: str) -> ParsedField:
    """Parse one field's text; raise ScheduleError naming the field and the bad value."""
    memo = _MEMO[field]
    hit = memo.get(text)
    if hit is not None:
        return hit
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
    if field is Field.DAY_OF_WEEK:
        if mask >> 7:
            mask = (mask | 1) & 0x7F  # 7 is Sunday
        table = dow_spread(mask)
    elif field is Field.DAY_OF_MONTH:
        table = ()
    else:
        table = next_table(mask, bounds.high)
    parsed = ParsedField(mask, star, table)
    if len(memo) < _MEMO_LIMIT:
        memo[text] = parsed
    return parsed


def parse_fields(parts: list[str]) -> tuple[ParsedField, ...]:
    """Parse six field texts (seconds first); a fleet's common tokens are dictionary hits."""
    try:
        return (
            _SEC[parts[0]],
            _MIN[parts[1]],
            _HOUR[parts[2]],
            _DOM[parts[3]],
            _MON[parts[4]],
            _DOW[parts[5]],
        )
    except KeyError:
        return tuple(
            memo.get(p) or parse_field(f, p)
            for memo, f, p in zip(_MEMOS, FIELDS, parts, strict=True)
        )
