"""A timezone as a list of UTC-offset transitions, in integer Unix seconds.

zoneinfo converts single instants but does not list transitions, and the DST rules of
schedule.py need them (where a gap or a repeated range starts and how long it is). We
find them by probing zoneinfo: the timeline is cut into chunks of 2**25 s (about 388
days); a chunk is probed every 3 days and every change of offset between two probes is
pinned to the second by bisection (and again, if the offset changed more than once
between the probes). The probes can only miss a change undone before the next probe; no
zone has two offset changes less than 6.9 days apart between 1970 and 2045 (checked over
all of tzdata: Brazil's Noronha in October 2000 and Gaza's predicted October 2040 come
closest; tests/test_schedule_property.py pins both). Chunks are computed on first use and
kept, at a fraction of a millisecond each.

The search asks for *segments* (a stretch of constant offset, with the offsets on either
side); the last segment found is kept, since a batch of next-fire computations for one
instant asks for the same segment of each zone over and over.
"""

from bisect import bisect_right
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from dkron_trio.schedule_base import ScheduleError

CHUNK = 1 << 25
_DAY = 86400
_SECOND = timedelta(seconds=1)
# Probes stay inside datetime's range (year 1 to 9999) with a day of margin for offsets.
_MIN_TS = int(datetime(1, 1, 3, tzinfo=UTC).timestamp())
_MAX_TS = int(datetime(9999, 12, 29, tzinfo=UTC).timestamp())
_PROBE_STEP = 3 * _DAY
# The longest repeated range any zone has had (Pacific/Apia and Kiribati moved by a day):
# a segment start further back than this cannot matter to the DST rules.
_MAX_SHIFT = 2 * _DAY


@attrs.frozen
class Segment:
    """[start, end) of constant UTC `offset`; `before` holds up to start, `after` from end.

    `before == offset` (or `after == offset`) marks a pseudo-boundary, not a transition.
    """

    start: int
    end: int
    offset: int
    before: int
    after: int


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
    _last: Segment = Segment(0, 0, 0, 0, 0)
    _following: dict[int, Segment] = attrs.field(factory=dict)

    def segment(self, instant: int) -> Segment:
        """The segment containing a Unix instant (the last one found is kept)."""
        last = self._last
        if last.start <= instant < last.end:
            return last
        found = self._last = self._find(instant)
        return found

    def following(self, seg: Segment) -> Segment:
        """The segment after `seg` (memoized by boundary)."""
        found = self._following.get(seg.end)
        if found is None:
            found = self._following[seg.end] = self._find(seg.end)
        return found

    def _find(self, instant: int) -> Segment:
        """Segment holding `instant`. Chunk edges that are not transitions become pseudo
        boundaries (the same offset on both sides), so only the chunk of `instant` is
        needed, plus the previous one when `instant` lies within _MAX_SHIFT of its start."""
        k = instant // CHUNK
        c = self.chunk(k)
        i = bisect_right(c.transitions, instant)
        if i:
            start = c.transitions[i - 1]
            offset = c.offsets[i - 1]
            before = c.offsets[i - 2] if i >= 2 else c.before
        else:
            start = k * CHUNK
            before = offset = c.before
            if instant - start < _MAX_SHIFT:
                p = self.chunk(k - 1)
                if p.transitions:
                    start = p.transitions[-1]
                    before = p.offsets[-2] if len(p.transitions) >= 2 else p.before
        if i < len(c.transitions):
            return Segment(start, c.transitions[i], offset, before, c.offsets[i])
        return Segment(start, (k + 1) * CHUNK, offset, before, offset)

    def chunk(self, index: int) -> Chunk:
        """The transitions in chunk `index` (instants index*CHUNK .. (index+1)*CHUNK - 1)."""
        found = self._chunks.get(index)
        if found is None:
            found = self._chunks[index] = self._probe(index)
        return found

    def _offset(self, instant: int) -> int:
        if not _MIN_TS <= instant <= _MAX_TS:
            instant = min(max(instant, _MIN_TS), _MAX_TS)
        off = datetime.fromtimestamp(instant, self._zone).utcoffset()
        assert off is not None
        return off // _SECOND

    def _probe(self, index: int) -> Chunk:
        start = index * CHUNK
        end = start + CHUNK
        points = [start - 1, *range(start, end, _PROBE_STEP), end - 1]
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
