"""Properties of next_after: equal to a brute-force oracle, increasing, and croniter on UTC.

The oracle knows nothing of the fast path: it steps through real UTC instants minute by
minute, asks zoneinfo for each one's wall time and applies the DST rules of schedule.py's
docstring directly (a gap fires once at its end if any wall time in it matches; a
repeated wall time fires on its second pass only for hour-wildcard specs; zoneinfo's
`fold` says which pass). Stepping by minute instead of by second is exact here: every
offset of the zones used (since 1970) is a whole number of minutes and transitions fall
on whole minutes (the oracle asserts both), so within a minute wall time and real time
advance together and the minute's matching instants are minute + each allowed second.
"""

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import attrs
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dkron_trio.schedule import ScheduleError, parse_schedule
from dkron_trio.schedule_zone import CHUNK, timeline

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "Antarctica/Troll",
    "Pacific/Chatham",
    "America/St_Johns",
    "Asia/Kolkata",
    "Europe/London",
]
YEARS = (2011, 2018, 2026)
WINDOW = 30 * 3600
LIMIT = 8
BOUNDS = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DOW_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


@attrs.frozen
class Spec:
    """A generated spec: its text and, independently, what it means."""

    text: str
    values: tuple[frozenset[int], ...]  # sec, min, hour, dom, month, dow
    dom_star: bool
    dow_star: bool

    @property
    def hour_wildcard(self) -> bool:
        return self.values[2] == frozenset(range(24))

    def matches(self, wall: datetime) -> bool:
        """Does a wall time's minute match (seconds are checked by the caller)?"""
        _, minutes, hours, doms, months, dows = self.values
        if wall.minute not in minutes or wall.hour not in hours or wall.month not in months:
            return False
        dom_ok = wall.day in doms
        dow_ok = (wall.weekday() + 1) % 7 in dows
        if self.dom_star or self.dow_star:
            return dom_ok and dow_ok
        return dom_ok or dow_ok


def _name(draw: st.DrawFn, field: int, value: int) -> str:
    if field == 4 and draw(st.integers(0, 4)) == 0:
        return draw(st.sampled_from([str.lower, str.upper, str.title]))(MONTH_NAMES[value - 1])
    if field == 5 and draw(st.integers(0, 4)) == 0:
        if value == 0 and draw(st.booleans()):
            return "7"
        return draw(st.sampled_from([str.lower, str.upper, str.title]))(DOW_NAMES[value])
    return str(value)


ALL_FORMS = ("value", "range", "star_step", "value_step", "range_step")
# croniter means the same as robfig for these (its day rule looks at the literal `*`, so
# steps stay out of the day fields); `?` and `N/step` are left out too.
CRONITER_FORMS = ("value", "range", "star_step", "range_step")
CRONITER_DAY_FORMS = ("value", "range")


@st.composite
def _part(draw: st.DrawFn, field: int, forms: tuple[str, ...]) -> tuple[str, set[int], bool]:
    lo, hi = BOUNDS[field]
    form = draw(st.sampled_from(forms))
    a = draw(st.integers(lo, hi))
    if form == "value":
        return _name(draw, field, a), {a}, False
    # croniter mishandles one-value ranges such as `23-23` (it matches every day)
    degenerate_ok = forms is ALL_FORMS
    if form == "range":
        b = draw(st.integers(a if degenerate_ok else min(a + 1, hi), hi))
        if a == b and not degenerate_ok:
            return _name(draw, field, a), {a}, False
        return f"{_name(draw, field, a)}-{_name(draw, field, b)}", set(range(a, b + 1)), False
    step = draw(st.integers(1, max(2, (hi - lo) // 2)))
    if form == "star_step":
        return f"*/{step}", set(range(lo, hi + 1, step)), step == 1
    if form == "value_step":
        return f"{a}/{step}", set(range(a, hi + 1, step)), False
    b = draw(st.integers(a if degenerate_ok else min(a + 1, hi), hi))
    if a == b and not degenerate_ok:
        return str(a), {a}, False
    return f"{a}-{b}/{step}", set(range(a, b + 1, step)), False


@st.composite
def _field(
    draw: st.DrawFn, field: int, star_weight: int, croniter_safe: bool
) -> tuple[str, set[int], bool]:
    lo, hi = BOUNDS[field]
    if draw(st.integers(0, 99)) < star_weight:
        question = field in (3, 5) and not croniter_safe and draw(st.booleans())
        return "?" if question else "*", set(range(lo, hi + 1)), True
    forms: tuple[str, ...] = ALL_FORMS
    if croniter_safe:
        forms = CRONITER_DAY_FORMS if field in (3, 5) else CRONITER_FORMS
    parts = draw(st.lists(_part(field, forms), min_size=1, max_size=3))
    values: set[int] = set()
    for _, v, _ in parts:
        values |= v
    return ",".join(p for p, _, _ in parts), values, any(s for _, _, s in parts)


STAR_WEIGHTS = (15, 20, 40, 65, 75, 65)


@st.composite
def specs(
    draw: st.DrawFn, croniter_safe: bool = False, hours: tuple[int, int] | None = None
) -> Spec:
    """A random spec; `hours` (local hours just before and at a transition) makes the hour
    field name them half of the time, so that fires land on the transition."""
    fields = [draw(_field(i, w, croniter_safe)) for i, w in enumerate(STAR_WEIGHTS)]
    if hours is not None and draw(st.booleans()):
        before, after = hours
        low, high = min(hours), max(hours)
        fields[2] = draw(
            st.sampled_from(
                [
                    (str(before), {before}, False),
                    (str(after), {after}, False),
                    (f"{low}-{high}", set(range(low, high + 1)), False),
                    (f"{before},{after}", {before, after}, False),
                ]
            )
        )
    five = not croniter_safe and draw(st.booleans())
    if five:
        fields[0] = ("", {0}, False)
    text = " ".join(f[0] for f in (fields[1:] if five else fields))
    values = tuple(frozenset(f[1]) for f in fields)
    return Spec(text, values, fields[3][2], fields[5][2])


def _offset(zone: ZoneInfo, instant: int) -> int:
    off = datetime.fromtimestamp(instant, zone).utcoffset()
    assert off is not None
    return int(off.total_seconds())


@functools.cache
def _transitions(name: str) -> tuple[int, ...]:
    """Instants where the zone's offset changes in YEARS (hourly scan, then bisection)."""
    zone = ZoneInfo(name)
    out = []
    for year in YEARS:
        start = int(datetime(year, 1, 1, tzinfo=UTC).timestamp())
        for u in range(start, start + 366 * 86400, 3600):
            if _offset(zone, u) != _offset(zone, u + 3600):
                lo, hi = u, u + 3600
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (mid, hi) if _offset(zone, mid) == _offset(zone, u) else (lo, mid)
                out.append(hi)
    return tuple(out)


@st.composite
def instants(draw: st.DrawFn, zone: str) -> datetime:
    year = draw(st.sampled_from(YEARS))
    base = int(datetime(year, 1, 1, tzinfo=UTC).timestamp()) + draw(st.integers(0, 365 * 86400))
    return datetime.fromtimestamp(base, UTC) + timedelta(microseconds=draw(_micros))


_micros = st.sampled_from([0, 0, 1, 500_000, 999_999])


def oracle(spec: Spec, zone_name: str, t: datetime, end: int) -> list[int]:
    """Fires in (t, end], at most LIMIT, by brute force over real minutes."""
    zone = ZoneInfo(zone_name)
    seconds = sorted(spec.values[0])
    t_ts = t.timestamp()
    u = int(t_ts) // 60 * 60
    prev_off = _offset(zone, u - 60)
    fires: list[int] = []
    while u <= end and len(fires) < LIMIT:
        local = datetime.fromtimestamp(u, zone)
        delta = local.utcoffset()
        assert delta is not None
        off = int(delta.total_seconds())
        assert off % 60 == 0
        if off != prev_off:
            assert _offset(zone, u - 1) == prev_off, "transitions must fall on whole minutes"
        found: set[int] = set()
        if off > prev_off:  # a gap ends at u: its wall times are [u + prev_off, u + off)
            for wall in range(u + prev_off, u + off, 60):
                if spec.matches(datetime.fromtimestamp(wall, UTC)):
                    found.add(u)
                    break
        if spec.matches(local):
            second_pass = local.fold == 1 and (
                local.replace(fold=0).utcoffset() != local.utcoffset()
            )
            if spec.hour_wildcard or not second_pass:
                found.update(u + s for s in seconds)
        fires.extend(c for c in sorted(found) if t_ts < c <= end)
        prev_off = off
        u += 60
    return fires[:LIMIT]


def _fast(next_after: Callable[[datetime], datetime | None], t: datetime, end: int) -> list[int]:
    out: list[int] = []
    cur = t
    while len(out) < LIMIT:
        nxt = next_after(cur)
        if nxt is None or nxt.timestamp() > end:
            break
        assert nxt > cur, "next_after must be strictly increasing"
        assert nxt.tzinfo is UTC
        out.append(int(nxt.timestamp()))
        cur = nxt
    return out


def _never_fires(spec: Spec) -> bool:
    longest = {m: 29 if m == 2 else 30 if m in (4, 6, 9, 11) else 31 for m in range(1, 13)}
    return (
        spec.dow_star
        and not spec.dom_star
        and all(d > longest[m] for m in spec.values[4] for d in spec.values[3])
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[Spec, str, datetime]:
    """Mostly a DST zone and an instant shortly before one of its transitions."""
    zone_name = draw(st.sampled_from(ZONES))
    transitions = _transitions(zone_name)
    if not transitions or draw(st.integers(0, 4)) == 0:
        return draw(specs()), zone_name, draw(instants(zone_name))
    x = draw(st.sampled_from(transitions))
    zone = ZoneInfo(zone_name)
    hours = (datetime.fromtimestamp(x - 1, zone).hour, datetime.fromtimestamp(x, zone).hour)
    lead = draw(st.integers(0, 3 * 3600) | st.integers(-3600, 26 * 3600))
    t = datetime.fromtimestamp(x - lead, UTC) + timedelta(microseconds=draw(_micros))
    return draw(specs(hours=hours)), zone_name, t


@settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(cases())
def test_next_after_equals_brute_force_oracle(case: tuple[Spec, str, datetime]) -> None:
    spec, zone, t = case
    try:
        schedule = parse_schedule(spec.text, timezone=zone)
    except ScheduleError:
        assert _never_fires(spec)
        return
    assert not _never_fires(spec)
    end = int(t.timestamp()) + WINDOW
    assert _fast(schedule.next_after, t, end) == oracle(spec, zone, t, end)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.sampled_from(ZONES), st.data())
def test_segments_agree_with_zoneinfo(zone_name: str, data: st.DataObject) -> None:
    zone = ZoneInfo(zone_name)
    transitions = _transitions(zone_name)
    choices = [st.integers(0, 2**31)]
    if transitions:
        choices.append(st.sampled_from(transitions).map(lambda x: x - 1))
        choices.append(st.sampled_from(transitions))
    near_chunk_edge = st.builds(
        lambda k, d: k * CHUNK + d, st.integers(30, 70), st.integers(-3 * 86400, 3 * 86400)
    )
    choices.append(near_chunk_edge)
    u = data.draw(st.one_of(choices))
    seg = timeline(zone_name).segment(u)
    assert seg.start <= u < seg.end
    assert seg.offset == _offset(zone, u) == _offset(zone, seg.start) == _offset(zone, seg.end - 1)
    assert seg.before == _offset(zone, seg.start - 1)
    assert seg.after == _offset(zone, seg.end)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(specs(croniter_safe=True), instants("UTC"))
def test_matches_croniter_on_utc(spec: Spec, t: datetime) -> None:
    try:
        schedule = parse_schedule(spec.text)
    except ScheduleError:
        assert _never_fires(spec)
        return
    it = croniter(spec.text, t, second_at_beginning=True)
    expected = [it.get_next(datetime) for _ in range(5)]
    got = []
    cur = t
    for _ in range(5):
        nxt = schedule.next_after(cur)
        assert nxt is not None
        got.append(nxt)
        cur = nxt
    assert got == expected


def _scan(zone: ZoneInfo, start: int, end: int) -> list[int]:
    """Offset changes in [start, end), by an hourly scan and bisection."""
    out = []
    for u in range(start, end, 3600):
        if _offset(zone, u) != _offset(zone, u + 3600):
            lo, hi = u, u + 3600
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _offset(zone, mid) == _offset(zone, u) else (lo, mid)
            out.append(hi)
    return out


def test_closest_transitions_in_tzdata_are_found() -> None:
    # The two closest pairs of offset changes since 1970 (under 7 days apart).
    for name, month in (("America/Noronha", (2000, 10)), ("Asia/Gaza", (2040, 10))):
        start = int(datetime(*month, 1, tzinfo=UTC).timestamp())
        end = start + 31 * 86400
        expected = _scan(ZoneInfo(name), start, end)
        assert len(expected) == 2
        line = timeline(name)
        got = [
            x
            for k in range(start // CHUNK, end // CHUNK + 1)
            for x in line.chunk(k).transitions
            if start <= x < end
        ]
        assert got == expected


def _wall_instant(zone: ZoneInfo, wall: datetime) -> int:
    """The instant a single wall time fires at, by the rules, straight from zoneinfo: its
    first occurrence if it exists, else the end of the gap holding it."""
    first = wall.replace(tzinfo=zone, fold=0)
    instant = int(first.timestamp())
    if datetime.fromtimestamp(instant, zone).replace(tzinfo=None) == wall:
        return instant
    # in a gap: fold=0 reads it with the offset before the gap, so the gap ends in
    # (wall - offset after, wall - offset before]; bisect for the change
    lo = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    hi = instant
    off_lo = _offset(zone, lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _offset(zone, mid) == off_lo else (lo, mid)
    return hi


@st.composite
def rare_specs(draw: st.DrawFn) -> tuple[str, tuple[int, int, int], Spec]:
    """One time of day with a specific hour, and day fields that fire rarely."""
    s, m, h = draw(st.integers(0, 59)), draw(st.integers(0, 59)), draw(st.integers(0, 23))
    spec = draw(specs())
    text = f"{s} {m} {h} " + " ".join(spec.text.split()[-3:])
    values = (frozenset({s}), frozenset({m}), frozenset({h}), *spec.values[3:])
    return text, (h, m, s), Spec(text, values, spec.dom_star, spec.dow_star)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(rare_specs(), st.sampled_from(ZONES), st.integers(0, 60 * 365 * 86400))
def test_far_fires_equal_day_by_day_oracle(
    case: tuple[str, tuple[int, int, int], Spec], zone_name: str, offset: int
) -> None:
    """Specs firing once a day at most, months or years ahead: the walk over many DST
    segments and chunk edges equals a day-by-day oracle (first matching day whose time,
    placed by `_wall_instant`, is after t)."""
    text, (h, m, s), spec = case
    t = datetime(1990, 1, 1, tzinfo=UTC) + timedelta(seconds=offset)
    try:
        schedule = parse_schedule(text, timezone=zone_name)
    except ScheduleError:
        assert _never_fires(spec)
        return
    zone = ZoneInfo(zone_name)
    day = t.astimezone(zone).date() - timedelta(days=1)
    expected = None
    for _ in range(12 * 366):
        wall = datetime(day.year, day.month, day.day, h, m, s)
        if spec.matches(wall):
            instant = _wall_instant(zone, wall)
            if instant > t.timestamp():
                expected = instant
                break
        day += timedelta(days=1)
    got = schedule.next_after(t)
    assert expected is not None
    assert got is not None and int(got.timestamp()) == expected
