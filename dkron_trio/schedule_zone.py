"""A timezone as a list of UTC-offset transitions, in integer Unix seconds.

zoneinfo converts single instants but does not list transitions, and the DST rules of
schedule.py need them (where a gap or a repeated range starts and how long it is). We
find them by probing zoneinfo: the timeline is cut into chunks of 2**25 s (about 388
days); a chunk is probed once a day and every change of offset between two probes is
pinned to the second by bisection (and again, if the offset changed more than once
between the probes). A zone changes its offset at most a few times a year and never
twice within a day, so daily probes miss nothing. Chunks are computed on first use and
kept: a zone costs about 0.3 ms per chunk, once per process.
"""

from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from dkron_trio.schedule_error import ScheduleError

CHUNK = 1 << 25
_DAY = 86400
_SECOND = timedelta(seconds=1)
# Probes stay inside datetime's range (year 1 to 9999) with a day of margin for offsets.
_MIN_TS = int(datetime(1, 1, 3, tzinfo=UTC).timestamp())
_MAX_TS = int(datetime(9999, 12, 29, tzinfo=UTC).timestamp())
# The longest repeated range any zone has had (Pacific/Apia and Kiribati moved by a day).
MAX_SHIFT = 2 * _DAY


@attrs.frozen
class Chunk:
    """Offsets for [start, start + CHUNK): `before` holds until the first transition."""

    before: int
    transitions: tuple[int, ...]
    offsets: tuple[int, ...]  # offsets[i] holds from transitions[i] on


@attrs.define(eq=False)
class ZoneTimeline:
    """Transitions of one zone, computed chunk by chunk on demand (memoized)."""

    name: str
    _zone: ZoneInfo
    _chunks: dict[int, Chunk] = attrs.field(factory=dict)

    def chunk(self, index: int) -> Chunk:
        """The transitions in chunk `index` (instants index*CHUNK .. (index+1)*CHUNK - 1)."""
        found = self._chunks.get(index)
        if found is None:
            found = self._chunks[index] = self._probe(index)
        return found

    def offset_at(self, instant: int) -> int:
        """UTC offset in seconds at a Unix instant."""
        c = self.chunk(instant // CHUNK)
        i = bisect_right(c.transitions, instant)
        return c.offsets[i - 1] if i else c.before

    def _offset(self, instant: int) -> int:
        clamped = min(max(instant, _MIN_TS), _MAX_TS)
        off = datetime.fromtimestamp(clamped, self._zone).utcoffset()
        assert off is not None
        return off // _SECOND

    def _probe(self, index: int) -> Chunk:
        start = index * CHUNK
        end = start + CHUNK
        points = [start - 1, *range(start, end, _DAY), end - 1]
        transitions: list[int] = []
        offsets: list[int] = []
        before = prev_off = self._offset(points[0])
        prev = points[0]
        for point in points[1:]:
            off = self._offset(point)
            while off != prev_off:
                # first instant in (prev, point] whose offset differs from prev_off
                lo, hi = prev, point
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if self._offset(mid) == prev_off:
                        lo = mid
                    else:
                        hi = mid
                prev_off = self._offset(hi)
                transitions.append(hi)
                offsets.append(prev_off)
                prev = hi
            prev = point
        return Chunk(before, tuple(transitions), tuple(offsets))


_TIMELINES: dict[str, ZoneTimeline] = {}


def timeline(name: str) -> ZoneTimeline:
    """The memoized timeline of an IANA zone ("" means UTC); ScheduleError if unknown."""
    found = _TIMELINES.get(name)
    if found is not None:
        return found
    key = name or "UTC"
    try:
        zone = ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: e.g. "America/"
        raise ScheduleError(f"unknown timezone {name!r}") from exc
    found = _TIMELINES[name] = ZoneTimeline(name, zone)
    return found
