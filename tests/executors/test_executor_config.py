"""Executor config parsing and validation (pure), and the registry."""

from datetime import UTC, datetime, timedelta

import pytest

from dkron_trio.executors.base import ExecutionRequest
from dkron_trio.executors.config import (
    HTTP_DEFAULT_TIMEOUT,
    ExecutorConfigError,
    TlsOptions,
    parse_http_config,
    parse_shell_config,
    validate_http_config,
    validate_shell_config,
)
from dkron_trio.executors.http import HttpExecutor
from dkron_trio.executors.registry import (
    KNOWN_EXECUTORS,
    UnknownExecutorError,
    get_executor,
    validate_executor_config,
)
from dkron_trio.executors.shell import ShellExecutor


def test_shell_command_is_split_like_a_shell_unless_shell_is_true() -> None:
    assert parse_shell_config({"command": "echo 'a b' c"}).argv == ("echo", "a b", "c")
    cfg = parse_shell_config({"command": "echo $HOME | wc", "shell": "true"})
    assert cfg.argv == ("/bin/sh", "-c", "echo $HOME | wc")


def test_shell_config_values() -> None:
    cfg = parse_shell_config(
        {
            "command": "env",
            "env": "A=1, B=x=y,,",
            "cwd": "/tmp",
            "timeout": "1m30s",
            "payload": "aGk=",
        }
    )
    assert cfg.env == (("A", "1"), ("B", "x=y"))
    assert cfg.cwd == "/tmp"
    assert cfg.timeout == timedelta(seconds=90)
    assert cfg.payload == b"hi"


@pytest.mark.parametrize(
    ("text", "env"),
    [
        ("HOSTS=a,b,c", (("HOSTS", "a,b,c"),)),
        ("HOSTS=a,b,MODE=fast", (("HOSTS", "a,b"), ("MODE", "fast"))),
        ("URL=http://h/?a=1,2", (("URL", "http://h/?a=1,2"),)),
        ("Q=x=1,y=2", (("Q", "x=1"), ("y", "2"))),  # `y=` starts a pair: the one limit
        ("A=1, B=2", (("A", "1"), ("B", "2"))),
        ("A=1,2 3,,", (("A", "1,2 3"),)),
    ],
)
def test_shell_env_values_may_contain_commas(text: str, env: tuple[tuple[str, str], ...]) -> None:
    assert parse_shell_config({"command": "env", "env": text}).env == env


def test_shell_zero_timeout_means_none_as_in_go() -> None:
    assert parse_shell_config({"command": "true", "timeout": "0s"}).timeout is None


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    [
        ({}, "command", "is required"),
        ({"command": "   "}, "command", "is required"),
        ({"command": "echo 'open"}, "command", "cannot be split"),
        ({"command": "x", "shell": "yes"}, "shell", "boolean"),
        ({"command": "x", "timeout": "10"}, "timeout", "Go duration"),
        ({"command": "x", "timeout": "-1s"}, "timeout", "negative"),
        ({"command": "x", "env": "NOPE,A=1"}, "env", "NAME=value"),
        ({"command": "x", "env": "1A=1"}, "env", "NAME=value"),
        ({"command": "x", "payload": "not base64!"}, "payload", "base64"),
    ],
)
def test_shell_config_problems_name_the_key(
    config: dict[str, str], key: str, fragment: str
) -> None:
    problems = validate_shell_config(config)
    assert [k for k, _ in problems] == [key]
    assert fragment in problems[0][1]
    with pytest.raises(ExecutorConfigError, match=key):
        parse_shell_config(config)


def test_every_shell_problem_is_reported_at_once() -> None:
    keys = {k for k, _ in validate_shell_config({"shell": "x", "timeout": "y", "env": "z"})}
    assert keys == {"shell", "timeout", "env", "command"}


def test_http_defaults() -> None:
    cfg = parse_http_config({"url": "http://127.0.0.1:1/x"})
    assert cfg.method == "GET"
    assert cfg.timeout == HTTP_DEFAULT_TIMEOUT
    assert cfg.expect_codes == frozenset({200})
    assert cfg.expect_body is None
    assert cfg.headers == ()
    assert cfg.tls == TlsOptions()


def test_http_config_values() -> None:
    cfg = parse_http_config(
        {
            "method": "post",
            "url": "https://example.test/a",
            "headers": '["Content-Type: application/json", "X-Time: 12:30", ""]',
            "body": '{"a": 1}',
            "timeout": "5",
            "expectCode": "200, 206",
            "expectBody": "ok|fine",
            "debug": "true",
            "tlsNoVerifyPeer": "1",
            "tlsCertificateFile": "/c.pem",
            "tlsRootCAsFile": "/ca.pem",
        }
    )
    assert cfg.method == "POST"
    assert cfg.headers == (("Content-Type", "application/json"), ("X-Time", "12:30"))
    assert cfg.timeout == timedelta(seconds=5)
    assert cfg.expect_codes == frozenset({200, 206})
    assert cfg.expect_body is not None and cfg.expect_body.search("all fine")
    assert cfg.debug
    assert cfg.tls == TlsOptions(False, "/c.pem", None, "/ca.pem")


def test_http_timeout_accepts_go_durations_and_zero_means_none() -> None:
    assert parse_http_config({"url": "http://h/", "timeout": "1m"}).timeout == timedelta(minutes=1)
    assert parse_http_config({"url": "http://h/", "timeout": "0"}).timeout is None


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    [
        ({}, "url", "is required"),
        ({"url": "ftp://h/"}, "url", "http://"),
        ({"url": "http:///path"}, "url", "http://"),
        ({"url": "http://h/", "method": "GE T"}, "method", "not an HTTP method"),
        ({"url": "http://h/", "headers": "Content-Type: x"}, "headers", "JSON array"),
        ({"url": "http://h/", "headers": "[1]"}, "headers", "JSON array"),
        ({"url": "http://h/", "headers": '["no colon"]'}, "headers", "Name: value"),
        ({"url": "http://h/", "timeout": "soon"}, "timeout", "seconds or a Go duration"),
        ({"url": "http://h/", "expectCode": "ok"}, "expectCode", "status codes"),
        ({"url": "http://h/", "expectCode": "200,99"}, "expectCode", "status codes"),
        ({"url": "http://h/", "expectBody": "("}, "expectBody", "regular expression"),
        ({"url": "http://h/", "debug": "yes"}, "debug", "boolean"),
        ({"url": "http://h/", "tlsNoVerifyPeer": "no"}, "tlsNoVerifyPeer", "boolean"),
        ({"url": "http://h/", "tlsCertificateKeyFile": "/k"}, "tlsCertificateKeyFile", "needs"),
    ],
)
def test_http_config_problems_name_the_key(config: dict[str, str], key: str, fragment: str) -> None:
    problems = validate_http_config(config)
    assert [k for k, _ in problems] == [key]
    assert fragment in problems[0][1]
    with pytest.raises(ExecutorConfigError, match=key):
        parse_http_config(config)


def test_registry() -> None:
    assert frozenset({"shell", "http"}) == KNOWN_EXECUTORS
    assert validate_executor_config("shell", {"command": "true"}) == []
    assert validate_executor_config("http", {}) == [("url", "is required")]
    with pytest.raises(UnknownExecutorError, match="unknown executor 'kafka'"):
        validate_executor_config("kafka", {})
    with pytest.raises(UnknownExecutorError):
        get_executor("")
    assert isinstance(get_executor("shell"), ShellExecutor)
    assert isinstance(get_executor("http"), HttpExecutor)
    assert get_executor("http") is get_executor("http")


def test_request_timeout_and_identity() -> None:
    req = ExecutionRequest(
        job_name="j",
        execution_id="1-n",
        scheduled_at=datetime(2024, 3, 1, 12, 0, 5, tzinfo=UTC),
        attempt=2,
        fence=41,
        executor_config={},
        timeout=timedelta(seconds=10),
    )
    assert req.effective_timeout(None) == timedelta(seconds=10)
    assert req.effective_timeout(timedelta(seconds=3)) == timedelta(seconds=3)
    assert req.effective_timeout(timedelta(hours=1)) == timedelta(seconds=10)
    assert ExecutionRequest("j", "i", req.scheduled_at, 1, 1, {}).effective_timeout(None) is None
    assert req.identity() == {
        "DKRON_JOB_NAME": "j",
        "DKRON_EXECUTION_ID": "1-n",
        "DKRON_SCHEDULED_AT": "2024-03-01T12:00:05Z",
        "DKRON_ATTEMPT": "2",
        "DKRON_FENCE": "41",
    }
