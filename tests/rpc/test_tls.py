"""RPC over mutual TLS, with a CA and certificates generated in the test."""

from __future__ import annotations

import datetime
import ipaddress
import random
import ssl
from pathlib import Path

import attrs
import pytest
import trio

from dkron_trio.rpc.counters import Metric
from dkron_trio.rpc.errors import RpcUnavailable
from dkron_trio.rpc.peer import Peer
from dkron_trio.rpc.server import RpcServer
from tests.rpc.helpers import FAST, echo, start_server

x509 = pytest.importorskip("cryptography.x509")
hashes = pytest.importorskip("cryptography.hazmat.primitives.hashes")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")
NameOID = x509.oid.NameOID


@attrs.frozen
class Pki:
    ca: Path
    server: tuple[Path, Path]
    client: tuple[Path, Path]


def _issue(tmp: Path, name: str, ca_key: object, ca_name: object, is_ca: bool) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if is_ca else ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
    )
    if not is_ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(key if is_ca else ca_key, hashes.SHA256())
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _pki(tmp: Path) -> Pki:
    ca_cert, ca_key_path = _issue(tmp, "ca", None, None, is_ca=True)
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    ca_name = x509.load_pem_x509_certificate(ca_cert.read_bytes()).subject
    return Pki(
        ca_cert,
        _issue(tmp, "server", ca_key, ca_name, is_ca=False),
        _issue(tmp, "client", ca_key, ca_name, is_ca=False),
    )


def _contexts(pki: Pki) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    server.load_cert_chain(*map(str, pki.server))
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki.ca))
    client.load_cert_chain(*map(str, pki.client))
    return server, client


async def test_round_trip_over_mutual_tls(nursery: trio.Nursery, tmp_path: Path) -> None:
    server_ctx, client_ctx = _contexts(_pki(tmp_path))
    server = RpcServer(FAST, ssl_context=server_ctx)
    server.on_request("echo", echo)
    address = await start_server(nursery, server)
    peer = Peer(address, FAST, random.Random(1), ssl_context=client_ctx)
    await nursery.start(peer.run)
    assert await peer.call("echo", b"secret") == b"secret"

    plain = Peer(address, FAST, random.Random(2))
    await nursery.start(plain.run)
    with pytest.raises(RpcUnavailable):
        await plain.call("echo", b"in clear")
    assert server.counters.get(Metric.FRAMES_IN) == 1
    assert await peer.call("echo", b"still") == b"still"
