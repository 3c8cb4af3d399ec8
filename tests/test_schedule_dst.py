"""DST tables: the rules of schedule.py's docstring, written out for real zones.

Each row: zone, spec, start (UTC), and the next fires as local ISO times with offsets.
2026 transitions used: Berlin 29 Mar 02:00 -> 03:00 and 25 Oct 03:00 -> 02:00; New York
8 Mar 02:00 -> 03:00 and 1 Nov 02:00 -> 01:00; Lord Howe (30-minute shift) 5 Apr
02:00 -> 01:30 and 4 Oct 02:00 -> 02:30.
"""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from dkron_trio.schedule import parse_schedule

BERLIN_SPRING = "2026-03-28T23:00:00+00:00"  # 29 Mar 00:00 CET
BERLIN_FALL = "2026-10-24T22:00:00+00:00"  # 25 Oct 00:00 CEST
NY_SPRING = "2026-03-08T05:00:00+00:00"  # 8 Mar 00:00 EST
NY_FALL = "2026-11-01T04:00:00+00:00"  # 1 Nov 00:00 EDT
LH_FALL = "2026-04-04T13:00:00+00:00"  # 5 Apr 00:00 +11:00
LH_SPRING = "2026-10-03T13:30:00+00:00"  # 4 Oct 00:00 +10:30

TABLE = [
    # --- Europe/Berlin, spring forward: the gap is 02:00-03:00 ---
    ("Europe/Berlin", "0 30 2 * * *", BERLIN_SPRING,
     ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]),
    ("Europe/Berlin", "0 0,30 2 * * *", BERLIN_SPRING,  # two gap times: one fire
     ["2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"]),
    ("Europe/Berlin", "0 0 3 * * *", BERLIN_SPRING,  # 03:00 exists: plain
     ["2026-03-29T03:00:00+02:00", "2026-03-30T03:00:00+02:00"]),
    ("Europe/Berlin", "0 30 2,3 * * *", BERLIN_SPRING,
     ["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]),
    ("Europe/Berlin", "30 59 2 * * *", BERLIN_SPRING,
     ["2026-03-29T03:00:00+02:00", "2026-03-30T02:59:30+02:00"]),
    ("Europe/Berlin", "0 */30 * * * *", "2026-03-29T00:15:00+00:00",  # gap + 03:00: once
     ["2026-03-29T01:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"]),
    ("Europe/Berlin", "@hourly", BERLIN_SPRING,
     ["2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"]),
    ("Europe/Berlin", "@daily", BERLIN_SPRING,
     ["2026-03-30T00:00:00+02:00", "2026-03-31T00:00:00+02:00"]),
    # --- Europe/Berlin, fall back: 02:00-03:00 happens twice ---
    ("Europe/Berlin", "0 30 2 * * *", BERLIN_FALL,  # fixed time: first pass only
     ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]),
    ("Europe/Berlin", "0 */20 2 * * *", BERLIN_FALL,
     ["2026-10-25T02:00:00+02:00", "2026-10-25T02:20:00+02:00", "2026-10-25T02:40:00+02:00",
      "2026-10-26T02:00:00+01:00"]),
    ("Europe/Berlin", "0 0 2-3 * * *", BERLIN_FALL,
     ["2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00", "2026-10-26T02:00:00+01:00"]),
    ("Europe/Berlin", "0 */15 * * * *", "2026-10-24T23:50:00+00:00",  # wildcard: both passes
     ["2026-10-25T02:00:00+02:00", "2026-10-25T02:15:00+02:00", "2026-10-25T02:30:00+02:00",
      "2026-10-25T02:45:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T02:15:00+01:00",
      "2026-10-25T02:30:00+01:00", "2026-10-25T02:45:00+01:00", "2026-10-25T03:00:00+01:00"]),
    ("Europe/Berlin", "@hourly", BERLIN_FALL,
     ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00",
      "2026-10-25T03:00:00+01:00"]),
    ("Europe/Berlin", "0 0 0-23 * * *", BERLIN_FALL,  # every hour named = wildcard hour
     ["2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00",
      "2026-10-25T03:00:00+01:00"]),
    ("Europe/Berlin", "@daily", BERLIN_FALL,
     ["2026-10-26T00:00:00+01:00", "2026-10-27T00:00:00+01:00"]),
    # --- America/New_York ---
    ("America/New_York", "0 30 2 * * *", NY_SPRING,
     ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"]),
    ("America/New_York", "@hourly", NY_SPRING,
     ["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"]),
    ("America/New_York", "0 0 9 * * MON-FRI", NY_SPRING,
     ["2026-03-09T09:00:00-04:00", "2026-03-10T09:00:00-04:00"]),
    ("America/New_York", "0 30 1 * * *", NY_FALL,
     ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]),
    ("America/New_York", "0 */30 * * * *", NY_FALL,
     ["2026-11-01T00:30:00-04:00", "2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00",
      "2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00"]),
    ("America/New_York", "@daily", NY_FALL,
     ["2026-11-02T00:00:00-05:00", "2026-11-03T00:00:00-05:00"]),
    ("America/New_York", "@weekly", NY_FALL,  # 1 Nov 2026 is a Sunday: t is its midnight
     ["2026-11-08T00:00:00-05:00"]),
    # --- Australia/Lord_Howe, fall back by 30 minutes: 01:30-02:00 happens twice ---
    ("Australia/Lord_Howe", "0 */15 * * * *", "2026-04-04T14:20:00+00:00",
     ["2026-04-05T01:30:00+11:00", "2026-04-05T01:45:00+11:00", "2026-04-05T01:30:00+10:30",
      "2026-04-05T01:45:00+10:30", "2026-04-05T02:00:00+10:30"]),
    ("Australia/Lord_Howe", "0 45 1 * * *", LH_FALL,
     ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]),
    ("Australia/Lord_Howe", "0 */10 1 * * *", "2026-04-04T14:35:00+00:00",
     ["2026-04-05T01:40:00+11:00", "2026-04-05T01:50:00+11:00", "2026-04-06T01:00:00+10:30"]),
    ("Australia/Lord_Howe", "@hourly", LH_FALL,
     ["2026-04-05T01:00:00+11:00", "2026-04-05T02:00:00+10:30", "2026-04-05T03:00:00+10:30"]),
    ("Australia/Lord_Howe", "0 30 * * * *", LH_FALL,
     ["2026-04-05T00:30:00+11:00", "2026-04-05T01:30:00+11:00", "2026-04-05T01:30:00+10:30",
      "2026-04-05T02:30:00+10:30"]),
    ("Australia/Lord_Howe", "0 0 2 * * *", LH_FALL,  # 02:00 is not repeated
     ["2026-04-05T02:00:00+10:30", "2026-04-06T02:00:00+10:30"]),
    ("Australia/Lord_Howe", "@daily", LH_FALL,
     ["2026-04-06T00:00:00+10:30"]),
    # --- Australia/Lord_Howe, spring forward by 30 minutes: the gap is 02:00-02:30 ---
    ("Australia/Lord_Howe", "0 15 2 * * *", LH_SPRING,
     ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"]),
    ("Australia/Lord_Howe", "0 0,15 2 * * *", LH_SPRING,
     ["2026-10-04T02:30:00+11:00", "2026-10-05T02:00:00+11:00"]),
    ("Australia/Lord_Howe", "0 30 2 * * *", LH_SPRING,
     ["2026-10-04T02:30:00+11:00", "2026-10-05T02:30:00+11:00"]),
    ("Australia/Lord_Howe", "0 */15 * * * *", "2026-10-03T15:00:00+00:00",
     ["2026-10-04T01:45:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00"]),
    ("Australia/Lord_Howe", "@hourly", LH_SPRING,
     ["2026-10-04T01:00:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T03:00:00+11:00"]),
    # --- other shapes of offset change ---
    ("America/Sao_Paulo", "@daily", "2018-11-03T12:00:00+00:00",  # the gap is at midnight
     ["2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"]),
    ("Pacific/Apia", "0 0 9 * * *", "2011-12-28T12:00:00+00:00",  # 30 Dec 2011 skipped
     ["2011-12-28T09:00:00-10:00", "2011-12-29T09:00:00-10:00", "2011-12-31T00:00:00+14:00",
      "2011-12-31T09:00:00+14:00"]),
    ("Antarctica/Troll", "0 30 1 * * *", "2026-03-28T12:00:00+00:00",  # +00 -> +02 at 01:00
     ["2026-03-29T03:00:00+02:00", "2026-03-30T01:30:00+02:00"]),
]  # fmt: skip


@pytest.mark.parametrize(("zone", "spec", "start", "expected"), TABLE)
def test_dst_table(zone: str, spec: str, start: str, expected: list[str]) -> None:
    schedule = parse_schedule(spec, timezone=zone)
    tz = ZoneInfo(zone)
    t = datetime.fromisoformat(start)
    got = []
    for _ in expected:
        nxt = schedule.next_after(t)
        assert nxt is not None and nxt.tzinfo is UTC
        got.append(nxt.astimezone(tz).isoformat())
        t = nxt
    assert got == expected


@pytest.mark.parametrize(
    ("spec", "start", "expected"),
    [
        # t in the second pass (02:10 CET): the fixed 02:30 already ran at 02:30 CEST
        ("0 30 2 * * *", "2026-10-25T01:10:00+00:00", "2026-10-26T02:30:00+01:00"),
        # ... but an hour-wildcard spec runs on the second pass too
        ("0 30 * * * *", "2026-10-25T01:10:00+00:00", "2026-10-25T02:30:00+01:00"),
        # t in the first pass: the fixed time is still ahead
        ("0 30 2 * * *", "2026-10-25T00:10:00+00:00", "2026-10-25T02:30:00+02:00"),
        # right after the second pass began
        ("0 0 2 * * *", "2026-10-25T01:00:00+00:00", "2026-10-26T02:00:00+01:00"),
        # exactly at the gap's end: what the gap fired is not fired again
        ("0 30 2 * * *", "2026-03-29T01:00:00+00:00", "2026-03-30T02:30:00+02:00"),
        ("0 0 3 * * *", "2026-03-29T01:00:00+00:00", "2026-03-30T03:00:00+02:00"),
        # one second before the gap's end
        ("0 0 3 * * *", "2026-03-29T00:59:59+00:00", "2026-03-29T03:00:00+02:00"),
    ],
)
def test_berlin_from_inside_transitions(spec: str, start: str, expected: str) -> None:
    nxt = parse_schedule(spec, timezone="Europe/Berlin").next_after(datetime.fromisoformat(start))
    assert nxt is not None
    assert nxt.astimezone(ZoneInfo("Europe/Berlin")).isoformat() == expected


def test_tz_prefix_follows_dst() -> None:
    schedule = parse_schedule("CRON_TZ=Europe/Berlin 0 30 2 * * *", timezone="Asia/Tokyo")
    nxt = schedule.next_after(datetime.fromisoformat(BERLIN_SPRING))
    assert nxt == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_every_ignores_dst() -> None:
    anchor = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)
    schedule = parse_schedule("@every 1h", timezone="Europe/Berlin", anchor=anchor)
    got = []
    t = anchor
    for _ in range(4):
        nxt = schedule.next_after(t)
        assert nxt is not None
        got.append(nxt)
        t = nxt
    assert [(g - anchor).total_seconds() for g in got] == [3600, 7200, 10800, 14400]
