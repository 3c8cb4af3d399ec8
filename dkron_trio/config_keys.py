"""Every agent configuration key Dkron documents, with its flag, env name and status.

This table is the one place that says which keys dkron-trio implements. A key marked
``_NOT_YET`` is accepted by the parsers only to be refused with "not supported yet"; when its
feature lands, mark it ``_OK`` and give AgentConfig (config.py) a field of the same name.
"""

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType

import attrs

ENV_PREFIX = "DKRON_"


class KeyKind(Enum):
    """How a key's value is written: decides flag shape and how text is converted."""

    STRING = "string"
    INT = "int"
    BOOL = "bool"
    LIST = "list"  # repeatable flag / comma-separated text / list in a file
    TAGS = "tags"  # repeatable key=value flag / comma-separated text / mapping in a file
    TABLE = "table"  # nested mapping, file only


class KeyStatus(Enum):
    SUPPORTED = "supported"
    NOT_SUPPORTED = "not_supported"
    NO_OP = "no_op"  # accepted and type-checked; what it asks for already holds


@attrs.frozen
class KeySpec:
    """One configuration key: file name, flag name (None = file only), kind, status, help."""

    name: str
    kind: KeyKind
    status: KeyStatus
    help: str
    flag: str | None

    @property
    def env(self) -> str:
        return ENV_PREFIX + (self.flag or self.name).upper().replace("-", "_")


_S, _I, _B, _L = KeyKind.STRING, KeyKind.INT, KeyKind.BOOL, KeyKind.LIST
_OK, _NOT_YET, _NO_OP = KeyStatus.SUPPORTED, KeyStatus.NOT_SUPPORTED, KeyStatus.NO_OP
_TABLE: tuple[tuple[str, KeyKind, KeyStatus, str], ...] = (
    ("server", _B, _OK, "run as a server: store state, take part in Raft, serve the HTTP API"),
    ("node-name", _S, _OK, "unique name of this node (default: the hostname)"),
    ("bind-addr", _S, _OK, "gossip bind address host:port (default 0.0.0.0:8946)"),
    ("advertise-addr", _S, _OK, "address advertised to other nodes (default: bind-addr)"),
    ("http-addr", _S, _OK, "HTTP API bind address (default :8080)"),
    ("join", _L, _OK, "address of an agent to join at start (repeatable)"),
    ("retry-join", _L, _OK, "address of an agent to join, retrying (repeatable)"),
    ("raft-multiplier", _I, _OK, "scale Raft timeouts, 1-10 (default 1)"),
    (
        "run-lease",
        _S,
        _OK,
        "how long a node running an execution may be unreachable before it is lost (30s)",
    ),
    (
        "raft-snapshot-threshold",
        _I,
        _OK,
        "Raft entries applied between state snapshots (default 8192)",
    ),
    (
        "backend",
        _S,
        _OK,
        "where servers keep state: raft (embedded, default), etcd, redis, zk or dynamodb",
    ),
    ("backend-machines", _L, _OK, "host:port of the external backend's servers (repeatable)"),
    ("keyspace", _S, _OK, "prefix/namespace of this cluster's data in the backend (dkron)"),
    (
        "backend-lease-ttl",
        _S,
        _OK,
        "leader lease TTL in an external backend: failover time after a crash (default 10s)",
    ),
    ("tags", KeyKind.TAGS, _OK, "node tag key=value (repeatable; replaces the file's tags)"),
    ("log-level", _S, _OK, "debug, info, warn, error, fatal or panic (default info)"),
    ("log-format", _S, _OK, "text or json (default text)"),
    ("rpc-port", _I, _OK, "RPC port for Raft and node-to-node traffic (default 6868)"),
    ("advertise-rpc-port", _I, _OK, "RPC port advertised to others (default: rpc-port)"),
    ("bootstrap-expect", _I, _OK, "servers to wait for before bootstrapping Raft (default 0)"),
    ("data-dir", _S, _OK, "directory holding this node's state (default dkron.data)"),
    ("datacenter", _S, _OK, "datacenter of this node, tag dc (default dc1)"),
    ("region", _S, _OK, "region of this node (default global)"),
    ("body-limit", _I, _OK, "largest HTTP request body in bytes (default 1048576)"),
    ("max-jobs-per-request", _I, _OK, "most jobs in one request, /v1/restore (default 1000)"),
    ("http-rate-limit", _I, _OK, "API requests per second per client address (default 0: off)"),
    ("http-rate-burst", _I, _OK, "API requests a client may send at once (default 2x the rate)"),
    (
        "max-concurrent-executions",
        _I,
        _OK,
        "executions this node runs at once; more wait (default 0: no limit)",
    ),
    ("rpc-max-frame-size", _I, _OK, "largest RPC frame sent or accepted (default 16777216)"),
    (
        "gossip-max-datagram",
        _I,
        _OK,
        "largest gossip datagram sent or accepted, the same on every node (default 1400)",
    ),
    ("output-limit", _I, _OK, "bytes of an execution's output kept, its tail (default 256000)"),
    ("disable-usage-stats", _B, _NO_OP, "accepted for compatibility: no stats are ever sent"),
    ("profile", _S, _OK, "gossip timing profile lan, wan or local (default lan)"),
    ("retry-max", _I, _OK, "join attempts before giving up (default 0: forever)"),
    ("retry-interval", _S, _OK, "delay between join attempts (default 1s)"),
    ("encrypt", _S, _OK, "base64 gossip encryption key"),
    ("serf-reconnect-timeout", _S, _OK, "how long failed members are kept (default 24h)"),
    ("ui", _B, _NOT_YET, "serve the web UI"),
    ("mail-host", _S, _OK, "SMTP host for email notifications"),
    ("mail-port", _I, _OK, "SMTP port"),
    ("mail-username", _S, _OK, "SMTP user"),
    ("mail-password", _S, _OK, "SMTP password"),
    ("mail-from", _S, _OK, "sender of notification emails"),
    ("mail-payload", _S, _OK, "template of the notification email body"),
    ("mail-subject-prefix", _S, _OK, "subject prefix of notification emails"),
    ("pre-webhook-endpoint", _S, _OK, "URL called when an execution starts"),
    ("pre-webhook-payload", _S, _OK, "body template of the pre-webhook"),
    ("pre-webhook-headers", _L, _OK, "pre-webhook header Key:Value (repeatable)"),
    ("webhook-endpoint", _S, _OK, "URL called when an execution finishes"),
    ("webhook-payload", _S, _OK, "body template of the webhook"),
    ("webhook-headers", _L, _OK, "webhook header Key:Value (repeatable)"),
    ("webhook-url", _S, _NOT_YET, "deprecated webhook URL"),
    ("cronitor-endpoint", _S, _NOT_YET, "Cronitor telemetry endpoint"),
    ("dog-statsd-addr", _S, _NOT_YET, "DogStatsD address"),
    ("dog-statsd-tags", _L, _NOT_YET, "DogStatsD tag (repeatable)"),
    ("statsd-addr", _S, _NOT_YET, "statsd address"),
    ("enable-prometheus", _B, _OK, "serve Prometheus metrics"),
    ("otel-endpoint", _S, _NOT_YET, "OpenTelemetry gRPC endpoint"),
    ("username", _S, _NOT_YET, "HTTP basic auth user"),
    ("password", _S, _NOT_YET, "HTTP basic auth password"),
    ("cert-file", _S, _OK, "TLS certificate (PEM): HTTPS for the API, and RPC with a CA"),
    ("key-file", _S, _OK, "TLS private key (PEM) of cert-file"),
    ("trusted-ca-file", _S, _OK, "CA (PEM) of the cluster: turns on TLS for RPC"),
    ("client-cert-auth", _B, _OK, "RPC refuses peers without a certificate from the CA"),
    (
        "acl-enabled",
        _B,
        _OK,
        "every API call needs a token (X-Dkron-Token); dkron-trio acl bootstrap makes the first",
    ),
    ("client-crl-file", _S, _NOT_YET, "TLS client certificate revocation list"),
    ("auto-tls", _B, _NOT_YET, "generate TLS certificates"),
    ("fast", _B, _NOT_YET, "fast Raft log"),
    ("acl", KeyKind.TABLE, _NOT_YET, "ACL settings"),
)
# Dkron's flag for the `tags` map is the repeatable `--tag` (env DKRON_TAG).
_FLAG_NAMES = {"tags": "tag"}


def _spec(name: str, kind: KeyKind, status: KeyStatus, help_: str) -> KeySpec:
    flag = None if kind is KeyKind.TABLE else _FLAG_NAMES.get(name, name)
    return KeySpec(name, kind, status, help_, flag)


KEYS: Mapping[str, KeySpec] = MappingProxyType({row[0]: _spec(*row) for row in _TABLE})
NOT_SUPPORTED: frozenset[str] = frozenset(
    name for name, spec in KEYS.items() if spec.status is KeyStatus.NOT_SUPPORTED
)
