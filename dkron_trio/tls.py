"""TLS settings from the agent's config: the HTTP API's certificate, and the SSL contexts of
node-to-node RPC (DESIGN.md §7).

- `cert-file` + `key-file`: the HTTP API (and UI) is served over HTTPS with them.
- `trusted-ca-file` (with `cert-file` + `key-file`): RPC runs over TLS. Each server presents
  its certificate, dials others trusting only that CA, and presents its certificate when
  dialing too. With `client-cert-auth` a server refuses a peer that presents no certificate
  chaining to the CA (mutual TLS). Peers are dialed by address, so RPC checks the chain, not
  host names: the CA is what admits a node to the cluster.

Which keys go together is checked with the rest of the config (config.py); the files are
read when the contexts are built, so a missing or unreadable file stops the agent at start
with the key named, not at the first connection.
"""

import ssl
from pathlib import Path

import attrs

from dkron_trio.config import AgentConfig


class TlsError(ValueError):
    """A TLS setting that cannot be used; `key` names the config key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@attrs.frozen
class HttpTls:
    """The certificate and key the HTTP API serves with (hypercorn's certfile/keyfile)."""

    cert_file: str
    key_file: str


def _readable(key: str, path: str) -> str:
    try:
        Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(key, f"cannot read {path!r}: {exc.strerror}") from None
    return path


def http_tls(config: AgentConfig) -> HttpTls | None:
    """The HTTP API's certificate, or None to serve plain HTTP."""
    if not config.cert_file:
        return None
    _server_context(config)  # fails now, naming the key, if the pair does not load
    return HttpTls(config.cert_file, config.key_file)


def _load_chain(context: ssl.SSLContext, config: AgentConfig) -> None:
    cert = _readable("cert-file", config.cert_file)
    key = _readable("key-file", config.key_file)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise TlsError("cert-file", f"certificate and key do not load: {exc.reason}") from None


def _server_context(config: AgentConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, config)
    return context


def _load_ca(context: ssl.SSLContext, config: AgentConfig) -> None:
    ca = _readable("trusted-ca-file", config.trusted_ca_file)
    try:
        context.load_verify_locations(cafile=ca)
    except ssl.SSLError as exc:
        raise TlsError("trusted-ca-file", f"no CA certificate in {ca!r}: {exc.reason}") from None


def rpc_server_context(config: AgentConfig) -> ssl.SSLContext | None:
    """The context the RPC listener wraps connections in, or None for plain RPC."""
    if not config.trusted_ca_file:
        return None
    context = _server_context(config)
    _load_ca(context, config)
    context.verify_mode = ssl.CERT_REQUIRED if config.client_cert_auth else ssl.CERT_OPTIONAL
    return context


def rpc_client_context(config: AgentConfig) -> ssl.SSLContext | None:
    """The context this node dials other nodes' RPC with, or None for plain RPC."""
    if not config.trusted_ca_file:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    _load_ca(context, config)
    _load_chain(context, config)
    return context
