"""The capped output buffer."""

from hypothesis import given
from hypothesis import strategies as st

from dkron_trio.executors.output import OutputBuffer


def test_keeps_everything_under_the_limit() -> None:
    buf = OutputBuffer(10)
    buf.append(b"abc")
    buf.append(b"def")
    assert buf.tail() == b"abcdef"
    assert not buf.truncated
    assert buf.text() == "abcdef"


def test_drops_the_head_past_the_limit() -> None:
    buf = OutputBuffer(5)
    buf.append(b"abcd")
    buf.append(b"efg")
    assert buf.tail() == b"cdefg"
    buf.append(b"0123456789")
    assert buf.tail() == b"56789"
    assert buf.truncated
    assert buf.total_bytes == 17


@given(st.lists(st.binary(max_size=40)), st.integers(min_value=1, max_value=50))
def test_tail_is_the_last_limit_bytes(chunks: list[bytes], limit: int) -> None:
    buf = OutputBuffer(limit)
    for chunk in chunks:
        buf.append(chunk)
    assert buf.tail() == b"".join(chunks)[-limit:]


def test_error_line_comes_first_and_the_whole_stays_within_the_limit() -> None:
    buf = OutputBuffer(12)
    buf.append(b"0123456789")
    assert buf.text("exit 1") == "exit 1\n56789"
    assert len(buf.text("exit 1").encode()) == 12
    assert OutputBuffer(12).text("exit 1") == "exit 1\n"
    assert buf.text("a very long error line") == "a very long "


def test_invalid_utf8_is_replaced() -> None:
    buf = OutputBuffer(100)
    buf.append("é".encode()[1:] + b"ok")
    assert buf.text() == "\ufffdok"
