from datetime import timedelta

import pytest

from dkron_trio.durations import DurationError, format_go_duration, parse_go_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1s", timedelta(seconds=1)),
        ("1h30m10s", timedelta(hours=1, minutes=30, seconds=10)),
        ("500ms", timedelta(milliseconds=500)),
        ("1.5h", timedelta(minutes=90)),
        ("-2m", timedelta(minutes=-2)),
        ("0", timedelta(0)),
        ("10us", timedelta(microseconds=10)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_go_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "1", "1d", "h", "1s2", "abc", "1 s", "--1s", "2562048h", "9" * 400 + "h", "-2562048h"],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(DurationError):
        parse_go_duration(text)


def test_format() -> None:
    assert format_go_duration(timedelta(hours=1, minutes=30)) == "1h30m0s"
    assert format_go_duration(timedelta(seconds=10)) == "10s"
    assert format_go_duration(timedelta(0)) == "0s"
