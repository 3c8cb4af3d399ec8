"""Executor settings: Dkron's `executor_config` keys parsed, defaulted and validated in one place.

Pure (no IO): the job model calls the validators at create time so a bad config is a 400
naming the key, and the executors parse the same way at run time.
"""

import base64
import binascii
import json
import re
import shlex
from collections.abc import Callable, Mapping
from datetime import timedelta
from enum import Enum
from typing import TypeVar

import attrs

from dkron_trio.durations import DurationError, parse_go_duration

OUTPUT_LIMIT_BYTES = 256_000
"""How much output an execution keeps: the last 256,000 bytes, like Dkron."""

SHELL_PATH = "/bin/sh"
KILL_GRACE = timedelta(seconds=2)
"""Between SIGTERM and SIGKILL of a job's process group, and how long output may still drain."""

HTTP_DEFAULT_METHOD = "GET"
HTTP_DEFAULT_TIMEOUT = timedelta(seconds=30)
HTTP_DEFAULT_EXPECT_CODES = frozenset({200})

_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HTTP_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

T = TypeVar("T")

Problem = tuple[str, str]
"""(executor_config key, message), e.g. ("command", "is required")."""


class ExecutorKind(Enum):
    """The executors built into every agent."""

    SHELL = "shell"
    HTTP = "http"


class ExecutorConfigError(ValueError):
    """An executor_config that cannot run; `problems` names each bad key."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {message}" for key, message in problems))


@attrs.frozen
class ShellConfig:
    """A `shell` job's settings. `argv` is what gets exec'd (already split or wrapped in sh -c)."""

    command: str
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    cwd: str | None
    timeout: timedelta | None
    payload: bytes


@attrs.frozen
class TlsOptions:
    """Client TLS settings of an `http` job; hashable so SSL contexts can be cached per value."""

    verify_peer: bool = True
    certificate_file: str | None = None
    certificate_key_file: str | None = None
    root_cas_file: str | None = None


@attrs.frozen
class HttpConfig:
    """An `http` job's settings."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: str
    timeout: timedelta | None
    expect_codes: frozenset[int]
    expect_body: re.Pattern[str] | None
    debug: bool
    tls: TlsOptions


@attrs.define
class _Reader:
    """Parses keys one by one, collecting every problem instead of stopping at the first."""

    _config: Mapping[str, str]
    problems: list[Problem] = attrs.field(factory=list)

    def get(self, key: str, parse: Callable[[str], T], default: T) -> T:
        """Parse one key; a ValueError's message becomes its problem. Absent or "": default."""
        raw = self._config.get(key)
        if raw is None or raw == "":
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            self.problems.append((key, str(exc)))
            return default


def _parse_bool(value: str) -> bool:
    """Go's strconv.ParseBool, which Dkron uses for its boolean keys."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise ValueError(f"must be a boolean (true or false), got {value!r}")


def _parse_timeout(value: str, *, bare_seconds: bool) -> timedelta | None:
    """A Go duration (or, for http, a plain number of seconds). Zero means no timeout, as in Go."""
    text = value.strip()
    if bare_seconds and text.isdigit():
        duration = timedelta(seconds=int(text))
    else:
        try:
            duration = parse_go_duration(text)
        except DurationError:
            expected = "a number of seconds or a Go duration" if bare_seconds else "a Go duration"
            raise ValueError(f"must be {expected} like '30s' or '1h30m', got {value!r}") from None
    if duration < timedelta(0):
        raise ValueError(f"must not be negative, got {value!r}")
    return duration or None


def _parse_env(value: str) -> tuple[tuple[str, str], ...]:
    """Dkron's "K1=v1,K2=v2" form, where (unlike Dkron, which splits every comma) a value
    may contain commas: an item that does not start with `NAME=` continues the value
    before it, so "HOSTS=a,b,MODE=x" sets HOSTS to "a,b". Empty items are dropped."""
    pairs: list[tuple[str, str]] = []
    for item in value.split(","):
        if not item.strip():
            continue
        name, sep, val = item.partition("=")
        name = name.strip()
        if sep and _ENV_NAME.fullmatch(name):
            pairs.append((name, val))
        elif pairs:
            last_name, last_value = pairs.pop()
            pairs.append((last_name, f"{last_value},{item}"))
        else:
            raise ValueError(f"expected NAME=value pairs separated by commas, got {item!r}")
    return tuple(pairs)


def _shell_config(config: Mapping[str, str]) -> tuple[ShellConfig | None, list[Problem]]:
    reader = _Reader(config)
    check = reader.get
    problems = reader.problems
    use_shell = check("shell", _parse_bool, False)
    env: tuple[tuple[str, str], ...] = check("env", _parse_env, ())
    timeout = check("timeout", lambda v: _parse_timeout(v, bare_seconds=False), None)
    payload = check("payload", _parse_payload, b"")
    command = config.get("command", "")
    argv: tuple[str, ...] = ()
    if not command.strip():
        problems.append(("command", "is required"))
    elif use_shell:
        argv = (SHELL_PATH, "-c", command)
    else:
        try:
            argv = tuple(shlex.split(command))
        except ValueError as exc:
            problems.append(("command", f"cannot be split into words: {exc}"))
    if problems:
        return None, problems
    cwd = config.get("cwd") or None
    return ShellConfig(command, argv, env, cwd, timeout, payload), []


def _parse_payload(value: str) -> bytes:
    """Dkron's (undocumented) `payload`: base64, written to the command's stdin."""
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("must be base64 (it is written to the command's stdin)") from None


def _parse_headers(value: str) -> tuple[tuple[str, str], ...]:
    """Dkron's form: a JSON array of "Name: value" strings."""
    try:
        items = json.loads(value)
    except json.JSONDecodeError:
        items = None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError('must be a JSON array of "Name: value" strings')
    headers: list[tuple[str, str]] = []
    for item in items:
        if not item:
            continue
        name, sep, val = item.partition(":")
        if not sep or not _HTTP_TOKEN.fullmatch(name.strip()):
            raise ValueError(f'expected "Name: value", got {item!r}')
        headers.append((name.strip(), val.strip()))
    return tuple(headers)


def _parse_codes(value: str) -> frozenset[int]:
    codes: set[int] = set()
    for part in value.split(","):
        text = part.strip()
        if not text.isdigit() or not 100 <= int(text) <= 599:
            raise ValueError(
                f"must be HTTP status codes (100-599) separated by commas, got {value!r}"
            )
        codes.add(int(text))
    return frozenset(codes)


def _parse_regex(value: str) -> re.Pattern[str]:
    try:
        return re.compile(value)
    except re.error as exc:
        raise ValueError(f"is not a valid regular expression: {exc}") from None


def _parse_method(value: str) -> str:
    if not _HTTP_TOKEN.fullmatch(value):
        raise ValueError(f"is not an HTTP method: {value!r}")
    return value.upper()


def _parse_url(value: str) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest[0] in "/?#":
        raise ValueError(f"must be an absolute http:// or https:// URL, got {value!r}")
    return value


def _http_config(config: Mapping[str, str]) -> tuple[HttpConfig | None, list[Problem]]:
    reader = _Reader(config)
    check = reader.get
    problems = reader.problems
    method = check("method", _parse_method, HTTP_DEFAULT_METHOD)
    url = check("url", _parse_url, "")
    if not config.get("url"):
        problems.append(("url", "is required"))
    headers: tuple[tuple[str, str], ...] = check("headers", _parse_headers, ())
    default_timeout: timedelta | None = HTTP_DEFAULT_TIMEOUT
    timeout = check("timeout", lambda v: _parse_timeout(v, bare_seconds=True), default_timeout)
    expect_codes = check("expectCode", _parse_codes, HTTP_DEFAULT_EXPECT_CODES)
    expect_body = check("expectBody", _parse_regex, None)
    debug = check("debug", _parse_bool, False)
    no_verify = check("tlsNoVerifyPeer", _parse_bool, False)
    cert = config.get("tlsCertificateFile") or None
    key = config.get("tlsCertificateKeyFile") or None
    if key is not None and cert is None:
        problems.append(("tlsCertificateKeyFile", "needs tlsCertificateFile"))
    if problems:
        return None, problems
    tls = TlsOptions(not no_verify, cert, key, config.get("tlsRootCAsFile") or None)
    body = config.get("body", "")
    return (
        HttpConfig(method, url, headers, body, timeout, expect_codes, expect_body, debug, tls),
        [],
    )


def validate_shell_config(config: Mapping[str, str]) -> list[Problem]:
    """Every problem of a `shell` executor_config; empty when it can run."""
    return _shell_config(config)[1]


def parse_shell_config(config: Mapping[str, str]) -> ShellConfig:
    """The settings of a `shell` job; raises ExecutorConfigError naming every bad key."""
    parsed, problems = _shell_config(config)
    if parsed is None:
        raise ExecutorConfigError(problems)
    return parsed


def validate_http_config(config: Mapping[str, str]) -> list[Problem]:
    """Every problem of an `http` executor_config; empty when it can run."""
    return _http_config(config)[1]


def parse_http_config(config: Mapping[str, str]) -> HttpConfig:
    """The settings of an `http` job; raises ExecutorConfigError naming every bad key."""
    parsed, problems = _http_config(config)
    if parsed is None:
        raise ExecutorConfigError(problems)
    return parsed
