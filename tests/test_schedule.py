"""Schedule forms, errors and the `~` hash (DST tables live in test_schedule_dst.py)."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dkron_trio.schedule import Schedule, ScheduleError, ScheduleKind, parse_schedule


def _utc(*parts: int) -> datetime:
    """_utc(2025, 1, 31, 8, 30) = that wall time in UTC."""
    y, mo, d, h, mi, s = (*parts, 0, 0, 0)[:6]
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def _fires(schedule: Schedule, start: datetime, n: int) -> list[datetime]:
    out: list[datetime] = []
    t = start
    for _ in range(n):
        nxt = schedule.next_after(t)
        assert nxt is not None
        out.append(nxt)
        t = nxt
    return out


START = _utc(2025, 1, 1)  # a Wednesday


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("0 30 8 * * 1-5", [_utc(2025, 1, 1, 8, 30), _utc(2025, 1, 2, 8, 30)]),
        ("*/20 * * * * *", [_utc(2025, 1, 1, 0, 0, 20), _utc(2025, 1, 1, 0, 0, 40)]),
        ("0 0 12 * * SAT,sun", [_utc(2025, 1, 4, 12), _utc(2025, 1, 5, 12)]),
        ("0 0 0 1 jan-Feb ?", [_utc(2025, 2, 1), _utc(2026, 1, 1)]),
        ("0 0 0 ? * 7", [_utc(2025, 1, 5), _utc(2025, 1, 12)]),
        ("0 0 0 * * 5-7", [_utc(2025, 1, 3), _utc(2025, 1, 4), _utc(2025, 1, 5)]),
        ("5 4 * * *", [_utc(2025, 1, 1, 4, 5), _utc(2025, 1, 2, 4, 5)]),
        ("0 0 0 13 * FRI", [_utc(2025, 1, 3), _utc(2025, 1, 10), _utc(2025, 1, 13)]),
        ("0 0 0 */10 * *", [_utc(2025, 1, 11), _utc(2025, 1, 21), _utc(2025, 1, 31)]),
        ("10/25 0 0 * * *", [_utc(2025, 1, 1, 0, 0, 10), _utc(2025, 1, 1, 0, 0, 35)]),
        ("0 0 0 29 2 *", [_utc(2028, 2, 29), _utc(2032, 2, 29)]),
        ("0 0 0 31 * *", [_utc(2025, 1, 31), _utc(2025, 3, 31), _utc(2025, 5, 31)]),
        ("0 0 3-5,20 * * *", [_utc(2025, 1, 1, 3), _utc(2025, 1, 1, 4), _utc(2025, 1, 1, 5)]),
        ("0 0 0 1 1 *", [_utc(2026, 1, 1), _utc(2027, 1, 1)]),
        ("0 0 0 * * 1/2", [_utc(2025, 1, 3), _utc(2025, 1, 6), _utc(2025, 1, 8)]),
        ("  0 0 0 * * *  ", [_utc(2025, 1, 2), _utc(2025, 1, 3)]),
    ],
)
def test_cron_forms(spec: str, expected: list[datetime]) -> None:
    schedule = parse_schedule(spec)
    assert schedule.kind is ScheduleKind.CRON
    assert _fires(schedule, START, len(expected)) == expected


@pytest.mark.parametrize(
    ("spec", "first"),
    [
        ("@yearly", _utc(2026, 1, 1)),
        ("@annually", _utc(2026, 1, 1)),
        ("@monthly", _utc(2025, 2, 1)),
        ("@weekly", _utc(2025, 1, 5)),
        ("@daily", _utc(2025, 1, 2)),
        ("@midnight", _utc(2025, 1, 2)),
        ("@hourly", _utc(2025, 1, 1, 1)),
        ("@minutely", _utc(2025, 1, 1, 0, 1)),
        ("@DAILY", _utc(2025, 1, 2)),
    ],
)
def test_descriptors(spec: str, first: datetime) -> None:
    schedule = parse_schedule(spec)
    assert schedule.kind is ScheduleKind.CRON
    assert schedule.next_after(START) == first


def test_descriptor_uses_job_timezone() -> None:
    schedule = parse_schedule("@daily", timezone="America/New_York")
    assert schedule.next_after(START) == _utc(2025, 1, 1, 5)


def test_strictly_after_and_sub_second_input() -> None:
    schedule = parse_schedule("* * * * * *")
    assert schedule.next_after(_utc(2025, 1, 1, 0, 0, 5)) == _utc(2025, 1, 1, 0, 0, 6)
    almost = _utc(2025, 1, 1, 0, 0, 5) + timedelta(microseconds=999_999)
    assert schedule.next_after(almost) == _utc(2025, 1, 1, 0, 0, 6)


def test_before_1970() -> None:
    schedule = parse_schedule("*/10 * * * * *", timezone="Europe/Berlin")
    t = _utc(1969, 12, 31, 23, 59, 55) + timedelta(microseconds=500_000)
    assert schedule.next_after(t) == _utc(1970, 1, 1)
    assert schedule.next_after(_utc(1969, 12, 31, 23, 59, 40)) == _utc(1969, 12, 31, 23, 59, 50)
    daily = parse_schedule("@daily", timezone="America/New_York")
    assert daily.next_after(_utc(1950, 6, 1)) == _utc(1950, 6, 1, 4)


def test_far_future_and_end_of_range() -> None:
    schedule = parse_schedule("0 0 0 1 1 *", timezone="Europe/Berlin")
    assert schedule.next_after(_utc(2400, 6, 1)) == _utc(2400, 12, 31, 23)
    assert parse_schedule("0 0 0 29 2 *").next_after(_utc(2096, 3, 1)) == _utc(2104, 2, 29)
    assert parse_schedule("@yearly").next_after(_utc(9999, 6, 1)) is None


def test_input_in_other_offset_output_utc() -> None:
    schedule = parse_schedule("0 0 * * * *")
    t = datetime(2025, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5)))
    out = schedule.next_after(t)
    assert out == _utc(2025, 1, 1, 1)
    assert out is not None and out.tzinfo is UTC


def test_naive_input_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_schedule("@daily").next_after(datetime(2025, 1, 1))


def test_hash_after_tz_prefix() -> None:
    schedule = parse_schedule("TZ=Asia/Kolkata 0 ~ * * * *", job_name="job1")
    assert schedule.next_after(START) == _utc(2025, 1, 1, 0, 34)  # 04 past in +05:30


def test_kinds_are_schedules() -> None:
    for spec, kind in [
        ("@daily", ScheduleKind.CRON),
        ("@every 1m", ScheduleKind.EVERY),
        ("@at 2030-01-01T00:00:00Z", ScheduleKind.AT),
        ("@manually", ScheduleKind.MANUAL),
    ]:
        schedule = parse_schedule(spec)
        assert isinstance(schedule, Schedule)
        assert schedule.kind is kind
        assert schedule.spec == spec


def test_tz_prefixes_override_job_timezone() -> None:
    for prefix in ("TZ", "CRON_TZ"):
        schedule = parse_schedule(f"{prefix}=Asia/Tokyo 0 0 9 * * *", timezone="Europe/Berlin")
        assert schedule.timezone == "Asia/Tokyo"
        assert schedule.next_after(START) == _utc(2025, 1, 2, 0)
    daily = parse_schedule("CRON_TZ=America/New_York @daily")
    assert daily.next_after(START) == _utc(2025, 1, 1, 5)


def test_every_is_anchored() -> None:
    anchor = _utc(2025, 1, 1, 0, 0, 7)
    schedule = parse_schedule("@every 1h30m", anchor=anchor)
    assert schedule.kind is ScheduleKind.EVERY
    assert schedule.next_after(START) == anchor
    assert schedule.next_after(anchor) == anchor + timedelta(minutes=90)
    assert schedule.next_after(anchor + timedelta(hours=3)) == anchor + timedelta(hours=4.5)
    assert schedule.next_after(anchor + timedelta(hours=2)) == anchor + timedelta(hours=3)


def test_every_truncates_to_seconds_with_minimum() -> None:
    anchor = _utc(2025, 1, 1)
    assert parse_schedule("@every 2.9s", anchor=anchor).next_after(anchor) == anchor + timedelta(
        seconds=2
    )
    assert parse_schedule("@every 500ms", anchor=anchor).next_after(anchor) == anchor + timedelta(
        seconds=1
    )


def test_every_default_anchor_is_epoch_and_ignores_timezone() -> None:
    schedule = parse_schedule("@every 1h", timezone="Asia/Kolkata")
    assert schedule.next_after(_utc(2025, 1, 1, 0, 10)) == _utc(2025, 1, 1, 1)


def test_every_aware_anchor_in_other_zone() -> None:
    anchor = datetime(2025, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=2)))
    schedule = parse_schedule("@every 24h", anchor=anchor)
    assert schedule.next_after(START) == _utc(2025, 1, 1, 1)


def test_at_fires_once() -> None:
    schedule = parse_schedule("@at 2025-12-31T23:59:00Z")
    assert schedule.kind is ScheduleKind.AT
    assert schedule.next_after(START) == _utc(2025, 12, 31, 23, 59)
    assert schedule.next_after(_utc(2025, 12, 31, 23, 59)) is None
    offset = parse_schedule("@at 2025-06-01T10:00:00.5+02:00")
    assert offset.next_after(START) == _utc(2025, 6, 1, 8, 0) + timedelta(milliseconds=500)


def test_manually_never_fires() -> None:
    schedule = parse_schedule("@manually", timezone="Europe/Berlin")
    assert schedule.kind is ScheduleKind.MANUAL
    assert schedule.next_after(START) is None


# Sum of code points of "job1": 106 + 111 + 98 + 49 = 364.
@pytest.mark.parametrize(
    ("spec", "expanded"),
    [
        ("~ * * * * *", "4 * * * * *"),  # 364 % 60
        ("0 ~ * * * *", "0 4 * * * *"),
        ("0 0 ~ * * *", "0 0 4 * * *"),  # 364 % 24 = 4
        ("0 0 0 ~ * *", "0 0 0 1 * *"),  # 364 % 28 + 1 = 1
        ("0 0 0 1 ~ *", "0 0 0 1 5 *"),  # 364 % 12 + 1 = 5
        ("0 0 0 * * ~", "0 0 0 * * 0"),  # 364 % 7 = 0
        ("0 ~/15 * * * *", "0 4/15 * * * *"),
        ("~ * * * *", "0 4 * * * *"),  # 5-field: minute first
        ("0 ~ ~ * * *", "0 4 4 * * *"),
    ],
)
def test_hash(spec: str, expanded: str) -> None:
    hashed = parse_schedule(spec, job_name="job1")
    plain = parse_schedule(expanded)
    assert _fires(hashed, START, 3) == _fires(plain, START, 3)


def test_hash_unicode_name() -> None:
    # "é" = 233, "日" = 26085: 26318 % 60 = 38
    hashed = parse_schedule("0 ~ * * * *", job_name="é日")
    assert hashed.next_after(START) == _utc(2025, 1, 1, 0, 38)


def test_hash_not_applied_to_at_forms() -> None:
    with pytest.raises(ScheduleError):
        parse_schedule("@every ~", job_name="job1")


def test_schedule_is_a_value() -> None:
    a = parse_schedule("0 0 * * * *", timezone="Europe/Berlin")
    b = parse_schedule("0 0 * * * *", timezone="Europe/Berlin")
    assert a == b and hash(a) == hash(b)
    assert a != parse_schedule("0 0 * * * *")


@pytest.mark.parametrize(
    ("spec", "timezone", "message"),
    [
        ("", "", "empty schedule"),
        ("   ", "", "empty schedule"),
        ("* * * *", "", "expected 6 fields"),
        ("* * * * * * *", "", "got 7"),
        ("60 * * * * *", "", r"second field '60': 60 is above the maximum 59"),
        ("0 60 * * * *", "", "minute field '60'"),
        ("0 0 24 * * *", "", "hour field '24'"),
        ("0 0 0 0 * *", "", "day-of-month field '0': 0 is below the minimum 1"),
        ("0 0 0 32 * *", "", "day-of-month field '32'"),
        ("0 0 0 * 13 *", "", "month field '13'"),
        ("0 0 0 * * 8", "", "day-of-week field '8'"),
        ("0 0 0 * foo *", "", "month field 'foo': 'foo' is not a number"),
        ("0 0 0 * * MONDAY", "", "day-of-week field 'MONDAY'"),
        ("0 5-3 * * * *", "", r"beginning of range \(5\) beyond end \(3\)"),
        ("0 */0 * * * *", "", "step must be positive"),
        ("0 1/2/3 * * * *", "", "too many slashes"),
        ("0 1-2-3 * * * *", "", "too many hyphens"),
        ("0 *-5 * * * *", "", "cannot start with"),
        ("0 1,,2 * * * *", "", "empty list element"),
        ("0 -1 * * * *", "", "minute field '-1'"),
        ("0 */x * * * *", "", "step 'x' is not a number"),
        ("0 ٣ * * * *", "", "not a number"),
        ("0 0 0 30 2 *", "", "day-of-month '30' never occurs in month '2'"),
        ("0 0 0 31 4,6 *", "", "never occurs"),
        ("@fortnightly", "", "unknown descriptor '@fortnightly'"),
        ("@daily now", "", "unexpected 'now' after @daily"),
        ("@manually please", "", "unexpected 'please' after @manually"),
        ("@every", "", "@every needs a duration"),
        ("@every 1d", "", "@every: invalid duration"),
        ("@every -5s", "", "must be positive"),
        ("@every 0s", "", "must be positive"),
        ("@at tomorrow", "", "@at needs an RFC3339 time"),
        ("@at 2025-12-31T23:59:00", "", "@at needs an RFC3339 time"),
        ("@at 2025-13-31T23:59:00Z", "", "@at time '2025-13-31T23:59:00Z'"),
        ("0 0 * * * *", "Mars/Olympus", "unknown timezone 'Mars/Olympus'"),
        ("@every 1h", "Nowhere", "unknown timezone 'Nowhere'"),
        ("0 0 * * * *", "../../etc/passwd", "unknown timezone"),
        ("0 0 * * * *", "America", "unknown timezone 'America'"),
        ("TZ=Nowhere 0 0 * * * *", "", "unknown timezone 'Nowhere'"),
        ("TZ= 0 0 * * * *", "", "empty timezone in 'TZ='"),
        ("CRON_TZ=UTC", "", "nothing follows the 'CRON_TZ=UTC' prefix"),
    ],
)
def test_errors(spec: str, timezone: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(spec, timezone=timezone)


def test_every_anchor_must_be_aware() -> None:
    with pytest.raises(ScheduleError, match="anchor"):
        parse_schedule("@every 1h", anchor=datetime(2025, 1, 1))
