"""Go-style durations (`1h30m10s`, `500ms`): the format Dkron uses for `@every` and timeouts."""

import functools
import re
from datetime import timedelta

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_MAX_SECONDS = ((1 << 63) - 1) / 1e9
"""Go's longest duration (int64 nanoseconds, about 2562047h); longer ones are errors, as in
Go, which also keeps timedelta arithmetic from overflowing."""
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


class DurationError(ValueError):
    """A string that is not a Go duration."""


@functools.lru_cache(maxsize=1024)  # every replicated job carries a few, mostly the same
def parse_go_duration(text: str) -> timedelta:
    """Parse a Go duration such as ``1h30m``, ``-1.5s`` or ``0``; raise DurationError otherwise."""
    s = text.strip()
    if not s:
        raise DurationError("empty duration")
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return timedelta(0)
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            raise DurationError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise DurationError(f"invalid duration {text!r}")
    if total > _MAX_SECONDS:
        raise DurationError(f"duration {text!r} out of range (at most 2562047h47m16s)")
    return timedelta(seconds=sign * total)


@functools.lru_cache(maxsize=1024)
def format_go_duration(value: timedelta) -> str:
    """Format a duration the way Go prints it (`1h30m0s`); used in API output."""
    total = value.total_seconds()
    sign = "-" if total < 0 else ""
    total = abs(total)
    if total == 0:
        return "0s"
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{int(hours)}h"
    if hours or minutes:
        out += f"{int(minutes)}m"
    out += f"{seconds:g}s"
    return sign + out
