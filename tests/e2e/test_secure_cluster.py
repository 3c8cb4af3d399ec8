"""A cluster with RPC over mutual TLS and encrypted gossip (real processes): it forms and
forwards writes; a node without the gossip key never joins gossip, and a node whose
certificate comes from another CA never joins Raft."""

import base64
import ssl
from pathlib import Path
from typing import Any

import httpx
import trustme

from tests.e2e.cluster import Cluster
from tests.e2e.process import AgentProcess, free_port, wait_for

KEY = base64.b64encode(bytes(range(32))).decode()


def _tls_files(tmp: Path, ca: trustme.CA, name: str) -> tuple[str, ...]:
    cert = ca.issue_cert("127.0.0.1", "localhost", common_name=name)
    ca_path, cert_path, key_path = tmp / f"{name}-ca.pem", tmp / f"{name}.pem", tmp / f"{name}.key"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return (
        "--cert-file",
        str(cert_path),
        "--key-file",
        str(key_path),
        "--trusted-ca-file",
        str(ca_path),
        "--client-cert-auth",
    )


def _https(server: AgentProcess, ca: trustme.CA) -> httpx.AsyncClient:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return httpx.AsyncClient(
        base_url=f"https://127.0.0.1:{server.http_port}", verify=context, timeout=10
    )


async def _get(server: AgentProcess, ca: trustme.CA, path: str) -> Any:
    try:
        async with _https(server, ca) as client:
            response = await client.get(path)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


async def test_tls_and_gossip_key_keep_strangers_out(tmp_path: Path) -> None:
    ca = trustme.CA()
    cluster = Cluster.create(tmp_path, 3)
    for server in cluster:
        server.extra_args += (*_tls_files(tmp_path, ca, server.node_name), "--encrypt", KEY)
    keyless = AgentProcess(tmp_path / "x1" / "dkron.data", free_port(), node_name="x1")
    keyless.extra_args = ("--join", cluster.servers[0].gossip_address)
    foreign = AgentProcess(tmp_path / "x2" / "dkron.data", free_port(), node_name="x2")
    foreign.extra_args = (
        "--join",
        cluster.servers[0].gossip_address,
        "--encrypt",
        KEY,
        *_tls_files(tmp_path, trustme.CA(), "x2"),
    )
    cluster.start()
    try:

        async def leader_agreed() -> bool:
            names = {(await _get(s, ca, "/v1/leader") or {}).get("Name") for s in cluster}
            return len(names) == 1 and None not in names

        await wait_for(leader_agreed, within=30, what="a leader over TLS", agent=cluster.servers[0])
        leader_name = (await _get(cluster.servers[0], ca, "/v1/leader"))["Name"]
        follower = next(s for s in cluster if s.node_name != leader_name)
        async with _https(follower, ca) as client:
            job = {
                "name": "secure",
                "schedule": "@manually",
                "executor": "shell",
                "executor_config": {"command": "true"},
            }
            assert (await client.post("/v1/jobs", json=job)).status_code == 201
        for server in cluster:
            assert await _get(server, ca, "/v1/jobs/secure?consistent") is not None

        keyless.start()
        foreign.start()

        async def foreign_in_gossip() -> bool:
            members = await _get(cluster.servers[0], ca, "/v1/members") or []
            return any(m["Name"] == "x2" and m["statusText"] == "alive" for m in members)

        await wait_for(foreign_in_gossip, within=20, what="x2 in gossip", agent=foreign)

        async def foreign_refused() -> bool:
            return "join failed" in foreign.log_text()

        await wait_for(foreign_refused, within=20, what="x2's join refused", agent=foreign)
        members = await _get(cluster.servers[0], ca, "/v1/members") or []
        assert "x1" not in {m["Name"] for m in members}, "a node without the key joined"
        assert not any("server added" in s.log_text() for s in cluster)
    finally:
        keyless.stop_quietly()
        foreign.stop_quietly()
        cluster.stop()
