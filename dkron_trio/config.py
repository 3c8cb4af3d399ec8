"""Agent configuration: Dkron's keys, defaults, sources and validation, all in one place.

Sources, highest precedence first (Dkron's): command-line flags, environment variables
``DKRON_<KEY>`` (upper case, ``-`` -> ``_``), a config file (``--config FILE`` or ``dkron.yml``
found in /etc/dkron, ~/.dkron, ./config), then defaults. Every key Dkron documents is known
(config_keys.py); keys dkron-trio does not implement yet are refused from any source with
"not supported yet", never silently ignored.
"""

import difflib
import json
import re
import socket
import tomllib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
import yaml

from dkron_trio.backends.registry import backend_error, is_external
from dkron_trio.config_keys import KEYS, KeyKind, KeySpec, KeyStatus
from dkron_trio.durations import DurationError, parse_go_duration
from dkron_trio.executors.config import OUTPUT_LIMIT_BYTES
from dkron_trio.gossip.config import (
    AGENT_RECONNECT_TIMEOUT,
    AGENT_RETRY_INTERVAL,
    UDP_BUFFER_SIZE,
    GossipConfigError,
    GossipProfile,
    agent_gossip_config,
)
from dkron_trio.notify.config import DEFAULT_SUBJECT_PREFIX, NotifyConfigError, notify_config
from dkron_trio.rpc.config import DEFAULT_MAX_FRAME_SIZE

DEFAULT_BIND_PORT = 8946
DEFAULT_HTTP_PORT = 8080
DEFAULT_RPC_PORT = 6868
DEFAULT_BODY_LIMIT = 1 << 20
DEFAULT_MAX_JOBS_PER_REQUEST = 1000
CONFIG_FILE_NAMES = ("dkron.yml", "dkron.yaml", "dkron.json", "dkron.toml")
RESERVED_TAGS = frozenset(
    {"role", "dc", "region", "version", "server", "bootstrap", "expect", "rpc_addr", "port"}
)
_NAME_RE = re.compile(r"^[^\s/]+$")
_KEYSPACE_RE = re.compile(r"^[A-Za-z0-9_.-]{3,64}$")
"""Fits an etcd prefix, a Redis key, a znode and a DynamoDB table name alike."""
_GO_BOOL = {
    "1": True, "t": True, "true": True, "yes": True,
    "0": False, "f": False, "false": False, "no": False,
}  # fmt: skip


class ConfigError(ValueError):
    """A configuration problem, naming where the bad value came from and the key."""

    def __init__(self, where: str, message: str, *, key: str = "") -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message
        self.key = key


class LogLevel(Enum):
    DEBUG = "debug"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"
    FATAL = "fatal"
    PANIC = "panic"


class LogFormat(Enum):
    TEXT = "text"
    JSON = "json"


@attrs.frozen
class HostPort:
    """A parsed ``host:port``; host "" means every interface."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_host_port(text: str, default_port: int | None = None) -> HostPort:
    """Parse ``host:port``, ``:port``, ``[v6]:port`` or (with a default port) a bare host."""
    s = text.strip()
    if not s:
        raise ValueError("empty address")
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            raise ValueError(f"invalid address {text!r}: missing ']'")
        host, rest = s[1:end], s[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"invalid address {text!r}")
        port_text = rest[1:] if rest else None
    elif s.count(":") == 1:
        host, port_text = s.split(":")
    else:
        host, port_text = s, None
    if port_text is None:
        if default_port is None:
            raise ValueError(f"invalid address {text!r}: missing port")
        return HostPort(host, default_port)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"invalid address {text!r}: port must be a number 0-65535")
    if host and not _NAME_RE.match(host):
        raise ValueError(f"invalid address {text!r}: bad host")
    return HostPort(host, int(port_text))


def parse_tags(items: Sequence[str]) -> dict[str, str]:
    """Parse ``key=value`` tag strings (Dkron's rule: non-empty key, value may be empty)."""
    tags: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"invalid tag {item!r}: expected key=value")
        tags[key.strip()] = value.strip()
    return tags


def _freeze_tags(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


def _check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"config {key}", message, key=key)


@attrs.frozen(kw_only=True)
class AgentConfig:
    """Everything an agent needs to start. Constructing one validates it."""

    node_name: str = attrs.field(factory=socket.gethostname)
    server: bool = False
    data_dir: Path = Path("dkron.data")
    http_addr: HostPort = HostPort("", DEFAULT_HTTP_PORT)
    bind_addr: HostPort = HostPort("0.0.0.0", DEFAULT_BIND_PORT)
    advertise_addr: HostPort | None = None
    rpc_port: int = DEFAULT_RPC_PORT
    advertise_rpc_port: int = 0
    tags: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_tags)
    region: str = "global"
    datacenter: str = "dc1"
    bootstrap_expect: int = 0
    join: tuple[HostPort, ...] = ()
    retry_join: tuple[HostPort, ...] = ()
    raft_multiplier: int = 1
    raft_snapshot_threshold: int = 8192
    backend: str = ""
    """Dkron's `backend`: "" / raft / boltdb for the embedded store, else an external one."""
    backend_machines: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    keyspace: str = "dkron"
    backend_lease_ttl: timedelta = timedelta(seconds=10)
    run_lease: timedelta = timedelta(seconds=30)
    config_path: Path | None = attrs.field(default=None, eq=False)
    """The file the config was read from (SIGHUP re-reads its tags); not a key."""
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.TEXT
    body_limit: int = DEFAULT_BODY_LIMIT
    max_jobs_per_request: int = DEFAULT_MAX_JOBS_PER_REQUEST
    http_rate_limit: int = 0
    http_rate_burst: int = 0
    max_concurrent_executions: int = 0
    rpc_max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    gossip_max_datagram: int = UDP_BUFFER_SIZE
    output_limit: int = OUTPUT_LIMIT_BYTES
    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    client_cert_auth: bool = False
    acl_enabled: bool = False
    profile: GossipProfile = GossipProfile.LAN
    encrypt: str = ""
    serf_reconnect_timeout: timedelta = AGENT_RECONNECT_TIMEOUT
    retry_interval: timedelta = AGENT_RETRY_INTERVAL
    retry_max: int = 0
    mail_host: str = ""
    mail_port: int = 0
    mail_username: str = ""
    mail_password: str = attrs.field(default="", repr=False)
    mail_from: str = ""
    mail_payload: str = ""
    mail_subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    webhook_endpoint: str = ""
    webhook_payload: str = ""
    webhook_headers: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    pre_webhook_endpoint: str = ""
    pre_webhook_payload: str = ""
    pre_webhook_headers: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    enable_prometheus: bool = False

    def __attrs_post_init__(self) -> None:
        _check(bool(_NAME_RE.match(self.node_name)), "node-name", "must be non-empty, no spaces")
        _check(bool(_NAME_RE.match(self.region)), "region", "must be non-empty, no spaces")
        _check(bool(_NAME_RE.match(self.datacenter)), "datacenter", "must be non-empty, no spaces")
        _check(str(self.data_dir) != "", "data-dir", "must not be empty")
        _check(0 <= self.rpc_port <= 65535, "rpc-port", "must be 0-65535")
        _check(0 <= self.advertise_rpc_port <= 65535, "advertise-rpc-port", "must be 0-65535")
        _check(1 <= self.raft_multiplier <= 10, "raft-multiplier", "must be between 1 and 10")
        _check(self.raft_snapshot_threshold >= 1, "raft-snapshot-threshold", "must be >= 1")
        problem = backend_error(self.backend)
        _check(problem is None, "backend", problem or "")
        _check(
            not is_external(self.backend) or bool(self.backend_machines),
            "backend-machines",
            f"backend {self.backend} needs at least one host:port",
        )
        _check(bool(_KEYSPACE_RE.match(self.keyspace)), "keyspace", "3-64 letters, digits, _ . -")
        _check(
            self.backend_lease_ttl.total_seconds() >= 1, "backend-lease-ttl", "must be at least 1s"
        )
        _check(self.run_lease.total_seconds() > 0, "run-lease", "must be a positive duration")
        _check(self.bootstrap_expect >= 0, "bootstrap-expect", "must not be negative")
        _check(
            self.server or self.bootstrap_expect == 0,
            "bootstrap-expect",
            "only valid together with server",
        )
        _check(self.body_limit > 0, "body-limit", "must be a positive number of bytes")
        _check(self.max_jobs_per_request > 0, "max-jobs-per-request", "must be positive")
        _check(self.http_rate_limit >= 0, "http-rate-limit", "must not be negative (0 = off)")
        _check(self.http_rate_burst >= 0, "http-rate-burst", "must not be negative")
        _check(
            self.max_concurrent_executions >= 0,
            "max-concurrent-executions",
            "must not be negative (0 = no limit)",
        )
        _check(
            1024 <= self.output_limit <= 1 << 30, "output-limit", "must be 1024 to 1073741824 bytes"
        )
        _check(
            1024 <= self.rpc_max_frame_size <= (1 << 32) - 1,
            "rpc-max-frame-size",
            "must be between 1024 bytes and 4 GiB",
        )
        _check(bool(self.cert_file) == bool(self.key_file), "cert-file", "needs key-file too")
        _check(
            not self.trusted_ca_file or bool(self.cert_file),
            "trusted-ca-file",
            "RPC over TLS needs cert-file and key-file too",
        )
        _check(
            not self.client_cert_auth or bool(self.trusted_ca_file),
            "client-cert-auth",
            "needs trusted-ca-file to check peers against",
        )
        if self.advertise_addr is not None:
            _check(
                self.advertise_addr.host not in {"", "0.0.0.0", "::"},
                "advertise-addr",
                "must name a specific address, not every interface",
            )
        reserved = sorted(RESERVED_TAGS & set(self.tags))
        _check(not reserved, "tags", f"reserved tag {', '.join(reserved)} is set by the agent")
        _check(all(k.strip() for k in self.tags), "tags", "tag keys must not be empty")
        try:
            agent_gossip_config(
                self.profile, reconnect_timeout=self.serf_reconnect_timeout,
                retry_interval=self.retry_interval, retry_max=self.retry_max,
                encrypt=self.encrypt, max_datagram=self.gossip_max_datagram,
            )  # fmt: skip
        except GossipConfigError as exc:
            raise ConfigError(f"config {exc.key}", str(exc), key=exc.key) from None
        try:
            notify_config(
                mail_host=self.mail_host, mail_port=self.mail_port,
                mail_username=self.mail_username, mail_password=self.mail_password,
                mail_from=self.mail_from, mail_payload=self.mail_payload,
                mail_subject_prefix=self.mail_subject_prefix,
                webhook_endpoint=self.webhook_endpoint, webhook_payload=self.webhook_payload,
                webhook_headers=self.webhook_headers,
                pre_webhook_endpoint=self.pre_webhook_endpoint,
                pre_webhook_payload=self.pre_webhook_payload,
                pre_webhook_headers=self.pre_webhook_headers,
            )  # fmt: skip
        except NotifyConfigError as exc:
            raise ConfigError(f"config {exc.key}", str(exc), key=exc.key) from None

    @property
    def rpc_addr(self) -> HostPort:
        """Where the RPC listener binds: bind-addr's host with rpc-port."""
        return HostPort(self.bind_addr.host, self.rpc_port)

    @property
    def advertised_rpc_port(self) -> int:
        return self.advertise_rpc_port or self.rpc_port


# ---- loading ----------------------------------------------------------------------------


class _Origin(Enum):
    FILE = "file"
    ENV = "env"
    FLAG = "flag"


@attrs.frozen
class _Raw:
    """A value for a key as given by one source, before conversion."""

    spec: KeySpec
    value: object
    origin: _Origin
    file: Path | None = None

    def where(self) -> str:
        if self.origin is _Origin.FLAG:
            return f"flag --{self.spec.flag}"
        if self.origin is _Origin.ENV:
            return f"env {self.spec.env}"
        return f"{self.file}: key {self.spec.name!r}"


def default_search_paths() -> list[Path]:
    """Dkron's config directories, in search order."""
    return [Path("/etc/dkron"), Path.home() / ".dkron", Path("config")]


def find_config_file(search_paths: Sequence[Path]) -> Path | None:
    for directory in search_paths:
        for name in CONFIG_FILE_NAMES:
            candidate = directory / name
            if candidate.is_file():
                return candidate
    return None


def read_config_file(path: Path) -> Mapping[str, Any]:
    """Read a YAML, JSON or TOML file (by extension) holding a mapping of keys."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read config file: {exc.strerror}") from exc
    try:
        if suffix in {".yml", ".yaml"}:
            data: Any = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigError(str(path), "config file must end in .yml, .yaml, .json or .toml")
    except (yaml.YAMLError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(path), f"cannot parse {suffix[1:].upper()}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "config file must hold a mapping of keys")
    return data


def _unknown(where: str, name: str, key: str) -> ConfigError:
    hint = difflib.get_close_matches(name.replace("_", "-").lower(), list(KEYS), n=1)
    suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
    return ConfigError(where, f"unknown key{suffix}", key=key)


def _file_layer(path: Path) -> list[_Raw]:
    out = []
    for name, value in read_config_file(path).items():
        key = str(name)
        spec = KEYS.get(key)
        if spec is None:
            raise _unknown(f"{path}: key {key!r}", key, key)
        out.append(_Raw(spec, value, _Origin.FILE, path))
    return out


def _env_layer(env: Mapping[str, str]) -> list[_Raw]:
    """Known DKRON_* variables. Others are left alone: the environment is shared with the
    CLI (DKRON_ADDRESS) and with job processes (DKRON_JOB_NAME, DKRON_FENCE, ...)."""
    by_env = {spec.env: spec for spec in KEYS.values() if spec.kind is not KeyKind.TABLE}
    return [_Raw(by_env[name], value, _Origin.ENV) for name, value in env.items() if name in by_env]


def _flag_layer(argv_values: Mapping[str, object]) -> list[_Raw]:
    out = []
    for key, value in argv_values.items():
        spec = KEYS.get(key)
        if spec is None or spec.flag is None:
            raise _unknown(f"flag --{key}", key, key)
        out.append(_Raw(spec, value, _Origin.FLAG))
    return out


def _split(raw: _Raw) -> list[str]:
    """Text list forms: a repeated flag and/or comma-separated text (cobra's StringSlice)."""
    if isinstance(raw.value, str) and not raw.value.strip():
        return []  # DKRON_JOIN="" means no addresses
    parts = raw.value if isinstance(raw.value, list | tuple) else [raw.value]
    items = [item.strip() for part in parts for item in str(part).split(",")]
    if any(not item for item in items):
        raise ConfigError(raw.where(), "empty item in list", key=raw.spec.name)
    return items


def _convert(raw: _Raw) -> object:
    """Turn a raw value into the key's canonical Python value, checking its type."""
    kind, value, where = raw.spec.kind, raw.value, raw.where()
    key = raw.spec.name

    def bad(expected: str) -> ConfigError:
        return ConfigError(where, f"expected {expected}, got {value!r}", key=key)

    if raw.origin is _Origin.FILE:
        if kind is KeyKind.STRING and isinstance(value, str):
            return value
        if kind is KeyKind.INT and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is KeyKind.BOOL and isinstance(value, bool):
            return value
        if kind is KeyKind.LIST and isinstance(value, list):
            if not all(isinstance(v, str) and v.strip() for v in value):
                raise bad("a list of non-empty strings")
            return [v.strip() for v in value]
        if kind is KeyKind.TAGS and isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, str | int):
                    raise bad("a mapping of tag names to strings")
            return {k.strip(): str(v) for k, v in value.items()}
        if kind is KeyKind.TABLE and isinstance(value, dict):
            return value
        raise bad({
            KeyKind.STRING: "a string", KeyKind.INT: "an integer", KeyKind.BOOL: "true or false",
            KeyKind.LIST: "a list of strings", KeyKind.TAGS: "a mapping of tags",
            KeyKind.TABLE: "a mapping",
        }[kind])  # fmt: skip
    if kind is KeyKind.LIST:
        return _split(raw)
    if kind is KeyKind.TAGS:
        try:
            return parse_tags(_split(raw))
        except ValueError as exc:
            raise ConfigError(where, str(exc), key=key) from exc
    text = str(value).strip()
    if kind is KeyKind.INT:
        if not re.fullmatch(r"[+-]?\d+", text):
            raise bad("an integer")
        return int(text)
    if kind is KeyKind.BOOL:
        if text.lower() not in _GO_BOOL:
            raise bad("true or false")
        return _GO_BOOL[text.lower()]
    return str(value)


def _enum_value(
    enum: type[LogLevel] | type[LogFormat] | type[GossipProfile], raw: _Raw, text: object
) -> object:
    try:
        return enum(text)
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise ConfigError(raw.where(), f"must be one of {choices}", key=raw.spec.name) from None


def _addr(raw: _Raw, text: object, default_port: int | None) -> HostPort:
    try:
        return parse_host_port(str(text), default_port)
    except ValueError as exc:
        raise ConfigError(raw.where(), str(exc), key=raw.spec.name) from None


def _field_value(raw: _Raw, value: object) -> object:
    """Map a supported key's canonical value onto its AgentConfig field type."""
    name = raw.spec.name
    if name == "log-level":
        return _enum_value(LogLevel, raw, value)
    if name == "log-format":
        return _enum_value(LogFormat, raw, value)
    if name == "profile":
        return _enum_value(GossipProfile, raw, value)
    if name in {"serf-reconnect-timeout", "retry-interval", "run-lease", "backend-lease-ttl"}:
        try:
            return parse_go_duration(str(value))
        except DurationError as exc:
            raise ConfigError(raw.where(), str(exc), key=name) from None
    if name == "data-dir":
        return Path(str(value))
    if name == "http-addr":
        return _addr(raw, value, None)
    if name == "bind-addr":
        return _addr(raw, value, DEFAULT_BIND_PORT)
    if name in {"join", "retry-join"} and isinstance(value, list):
        return tuple(_addr(raw, item, DEFAULT_BIND_PORT) for item in value)
    return value


def load_config(
    argv_values: Mapping[str, object],
    env: Mapping[str, str],
    config_file: Path | None,
    search_paths: Sequence[Path] | None = None,
    *,
    hostname: str | None = None,
) -> AgentConfig:
    """Build the agent's config from flags > env > file > defaults.

    ``argv_values`` maps key names (``"data-dir"``, ``"tags"``) to what the flag parser
    gathered: a string, or a list of strings for repeatable flags. Only flags actually given
    belong in it. ``config_file`` is ``--config``; without it ``dkron.{yml,yaml,json,toml}``
    is looked up in ``search_paths`` (default: Dkron's directories).
    """
    if config_file is not None:
        path: Path | None = config_file
        if not config_file.is_file():
            raise ConfigError(str(config_file), "config file not found")
    else:
        path = find_config_file(default_search_paths() if search_paths is None else search_paths)
    layers = [_file_layer(path) if path else [], _env_layer(env), _flag_layer(argv_values)]
    winners: dict[str, _Raw] = {}
    values: dict[str, object] = {}
    for layer in layers:
        for raw in layer:
            if raw.spec.status is KeyStatus.NOT_SUPPORTED:
                raise ConfigError(raw.where(), "not supported yet", key=raw.spec.name)
            value = _convert(raw)
            if raw.spec.status is KeyStatus.SUPPORTED:
                winners[raw.spec.name] = raw
                values[raw.spec.name] = _field_value(raw, value)
    if "advertise-addr" in values:
        # Like Dkron, an advertised address without a port takes bind-addr's port.
        bind = values.get("bind-addr")
        port = bind.port if isinstance(bind, HostPort) else DEFAULT_BIND_PORT
        text = values["advertise-addr"]
        values["advertise-addr"] = _addr(winners["advertise-addr"], text, port) if text else None
    fields: dict[str, Any] = {name.replace("-", "_"): v for name, v in values.items()}
    fields["config_path"] = path
    if "node_name" not in fields:
        fields["node_name"] = hostname if hostname is not None else socket.gethostname()
    try:
        return AgentConfig(**fields)
    except ConfigError as exc:
        raw_winner = winners.get(exc.key)
        if raw_winner is None:
            raise
        raise ConfigError(raw_winner.where(), exc.message, key=exc.key) from None
