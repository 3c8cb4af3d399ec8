"""Logging setup: constant messages with key-value context, as text or JSON lines."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from dkron_trio.config import LogFormat, LogLevel
from dkron_trio.logs import get_logger, setup_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out = io.StringIO()
    yield out
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_context(stream: io.StringIO) -> None:
    setup_logging(LogLevel.INFO, LogFormat.JSON, stream)
    log = get_logger("dkron_trio.test", node="n1")
    log.info("execution finished", job="backup", attempt=2, success=True)
    log.debug("not shown")
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "info"
    assert record["logger"] == "dkron_trio.test"
    assert record["msg"] == "execution finished"
    assert (record["node"], record["job"], record["attempt"], record["success"]) == (
        "n1",
        "backup",
        2,
        True,
    )
    assert record["time"].endswith("Z")


def test_context_keys_never_replace_the_base_fields(stream: io.StringIO) -> None:
    setup_logging(LogLevel.DEBUG, LogFormat.JSON, stream)
    get_logger("x").warning("clash", level="high", msg="m", time=3)
    record = json.loads(stream.getvalue())
    assert record["level"] == "warn" and record["msg"] == "clash"
    assert (record["ctx_level"], record["ctx_msg"], record["ctx_time"]) == ("high", "m", 3)


def test_text_lines_quote_values_with_spaces(stream: io.StringIO) -> None:
    setup_logging(LogLevel.DEBUG, LogFormat.TEXT, stream)
    get_logger("dkron_trio.t").bind(node="n1").debug("job planned", job="a b", empty="", n=1)
    line = stream.getvalue().rstrip("\n")
    assert line.split(" ", 1)[1] == 'DEBUG dkron_trio.t: job planned node=n1 job="a b" empty="" n=1'


def test_exception_is_included(stream: io.StringIO) -> None:
    setup_logging(LogLevel.ERROR, LogFormat.JSON, stream)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        get_logger("x").exception("step failed", step="apply")
    record = json.loads(stream.getvalue())
    assert record["step"] == "apply"
    assert "RuntimeError: boom" in record["exception"]


def test_setup_twice_replaces_the_handler(stream: io.StringIO) -> None:
    setup_logging(LogLevel.INFO, LogFormat.TEXT, io.StringIO())
    setup_logging(LogLevel.WARN, LogFormat.JSON, stream)
    log = get_logger("x")
    log.info("hidden")
    log.error("shown")
    assert [json.loads(line)["msg"] for line in stream.getvalue().splitlines()] == ["shown"]
