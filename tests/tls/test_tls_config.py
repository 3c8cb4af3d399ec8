"""TLS from the agent's config (dkron_trio/tls.py): HTTPS for the API, mutual TLS for RPC,
and the refusals: a peer whose certificate does not chain to the cluster's CA, a plain
client, and settings that cannot work. Certificates are generated here with trustme."""

import random
import ssl
from collections.abc import Mapping
from pathlib import Path

import attrs
import httpx
import pytest
import trio
import trustme

from dkron_trio.config import AgentConfig, ConfigError, HostPort, load_config
from dkron_trio.http.server import HttpServer
from dkron_trio.rpc.errors import RpcError, RpcUnavailable
from dkron_trio.rpc.peer import Peer
from dkron_trio.rpc.server import RpcServer
from dkron_trio.tls import TlsError, http_tls, rpc_client_context, rpc_server_context
from tests.http.harness import open_api
from tests.rpc.helpers import FAST, echo, start_server


@attrs.frozen
class Node:
    """One node's TLS files: its CA, and a certificate and key the CA issued."""

    ca: Path
    cert: Path
    key: Path

    def config(self, **extra: object) -> AgentConfig:
        flags: Mapping[str, object] = {
            "cert-file": str(self.cert),
            "key-file": str(self.key),
            "trusted-ca-file": str(self.ca),
            **{k.replace("_", "-"): v for k, v in extra.items()},
        }
        return load_config(flags, {}, None, [], hostname="test-host")


def _node(tmp: Path, ca: trustme.CA, name: str) -> Node:
    cert = ca.issue_cert("127.0.0.1", "localhost", common_name=name)
    ca_path, cert_path, key_path = tmp / f"{name}-ca.pem", tmp / f"{name}.pem", tmp / f"{name}.key"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return Node(ca_path, cert_path, key_path)


@pytest.fixture
def cluster_ca() -> trustme.CA:
    return trustme.CA()


# ---- HTTPS -----------------------------------------------------------------------------------


async def test_api_is_served_over_https_and_plain_http_gets_nothing(
    nursery: trio.Nursery, tmp_path: Path, cluster_ca: trustme.CA
) -> None:
    node = _node(tmp_path, cluster_ca, "s1")
    tls = http_tls(node.config())
    api = await open_api(nursery)
    server = HttpServer(api.app, HostPort("127.0.0.1", 0), tls=tls)
    (bound,) = await nursery.start(server.run)
    port = bound.rsplit(":", 1)[1]
    verify = ssl.create_default_context(cafile=str(node.ca))
    async with httpx.AsyncClient(verify=verify) as client:
        response = await client.get(f"https://127.0.0.1:{port}/health")
        assert response.status_code == 200
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.TransportError):
            await client.get(f"http://127.0.0.1:{port}/health")
    untrusting = ssl.create_default_context(cafile=str(_node(tmp_path, trustme.CA(), "x").ca))
    async with httpx.AsyncClient(verify=untrusting) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"https://127.0.0.1:{port}/health")
    await server.shutdown()


def test_without_certificate_files_everything_is_plain() -> None:
    config = load_config({}, {}, None, [], hostname="h")
    assert http_tls(config) is None
    assert rpc_server_context(config) is None
    assert rpc_client_context(config) is None


def test_https_only_needs_cert_and_key(tmp_path: Path, cluster_ca: trustme.CA) -> None:
    node = _node(tmp_path, cluster_ca, "s1")
    flags = {"cert-file": str(node.cert), "key-file": str(node.key)}
    config = load_config(flags, {}, None, [], hostname="h")
    assert http_tls(config) is not None
    assert rpc_server_context(config) is None


# ---- RPC: mutual TLS -------------------------------------------------------------------------


async def _serve(nursery: trio.Nursery, config: AgentConfig) -> HostPort:
    server = RpcServer(FAST, ssl_context=rpc_server_context(config))
    server.on_request("echo", echo)
    return await start_server(nursery, server)


async def _call(
    nursery: trio.Nursery,
    address: HostPort,
    context: ssl.SSLContext | None,
    call_timeout: float = FAST.call_timeout,
) -> bytes:
    config = attrs.evolve(FAST, call_timeout=call_timeout)
    peer = Peer(address, config, random.Random(1), ssl_context=context)
    await nursery.start(peer.run)
    return await peer.call("echo", b"hello")


async def test_rpc_mutual_tls_between_nodes_of_one_ca(
    nursery: trio.Nursery, tmp_path: Path, cluster_ca: trustme.CA
) -> None:
    s1, s2 = _node(tmp_path, cluster_ca, "s1"), _node(tmp_path, cluster_ca, "s2")
    address = await _serve(nursery, s1.config(client_cert_auth=True))
    assert await _call(nursery, address, rpc_client_context(s2.config())) == b"hello"


async def test_rpc_refuses_a_peer_whose_certificate_is_from_another_ca(
    nursery: trio.Nursery, tmp_path: Path, cluster_ca: trustme.CA
) -> None:
    s1 = _node(tmp_path, cluster_ca, "s1")
    address = await _serve(nursery, s1.config(client_cert_auth=True))
    intruder_ca = trustme.CA()
    intruder = _node(tmp_path, intruder_ca, "intruder")
    # it trusts the cluster's CA (so it would accept the server), but its own certificate
    # comes from a CA the cluster does not trust
    lying = attrs.evolve(intruder, ca=s1.ca)
    with pytest.raises(RpcUnavailable):
        await _call(nursery, address, rpc_client_context(lying.config()))
    # and a node of another CA does not accept the cluster's server either: it never
    # connects (it keeps redialing until its call times out)
    with pytest.raises(RpcError):
        await _call(nursery, address, rpc_client_context(intruder.config()), call_timeout=1.0)


async def test_rpc_refuses_a_peer_without_a_certificate_and_a_plain_client(
    nursery: trio.Nursery, tmp_path: Path, cluster_ca: trustme.CA
) -> None:
    s1 = _node(tmp_path, cluster_ca, "s1")
    address = await _serve(nursery, s1.config(client_cert_auth=True))
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.load_verify_locations(cafile=str(s1.ca))
    with pytest.raises(RpcUnavailable):
        await _call(nursery, address, anonymous)
    with pytest.raises(RpcUnavailable):
        await _call(nursery, address, None)


# ---- settings that cannot work ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "key"),
    [
        ({"cert-file": "c.pem"}, "cert-file"),
        ({"key-file": "k.pem"}, "cert-file"),
        ({"trusted-ca-file": "ca.pem"}, "trusted-ca-file"),
        ({"client-cert-auth": "true"}, "client-cert-auth"),
    ],
)
def test_settings_that_do_not_go_together_are_refused(flags: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(flags, {}, None, [], hostname="h")


def test_unreadable_or_wrong_files_name_the_key(tmp_path: Path, cluster_ca: trustme.CA) -> None:
    node = _node(tmp_path, cluster_ca, "s1")
    with pytest.raises(TlsError, match="trusted-ca-file"):
        rpc_server_context(attrs.evolve(node, ca=tmp_path / "missing.pem").config())
    with pytest.raises(TlsError, match="cert-file"):
        http_tls(attrs.evolve(node, key=_node(tmp_path, cluster_ca, "other").key).config())
    with pytest.raises(TlsError, match="trusted-ca-file"):
        rpc_client_context(attrs.evolve(node, ca=node.key).config())
