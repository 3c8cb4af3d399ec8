"""Five real servers gossip: they see each other with tags, notice a kill -9 within 10 s,
take a restarted member back, show a graceful leave as left, and spread a SIGHUP tag reload."""

import signal
from functools import partial
from pathlib import Path
from typing import Any

from tests.e2e.cluster import get_json, wait_for_leader
from tests.e2e.process import AgentProcess, free_port, wait_for

DETECTION_SECONDS = 10


def _servers(tmp_path: Path) -> list[AgentProcess]:
    servers = [
        AgentProcess(tmp_path / f"s{i}" / "dkron.data", free_port(), node_name=f"s{i}")
        for i in range(1, 6)
    ]
    config = tmp_path / "s1.yml"
    config.write_text("tags: {zone: a}\n")
    servers[0].extra_args = ("--config", str(config))
    for server in servers[1:]:
        server.extra_args = (
            "--join",
            servers[0].gossip_address,
            "--tag",
            f"rack={server.node_name}",
        )
    return servers


async def _statuses(observer: AgentProcess) -> dict[str, tuple[str, dict[str, str]]]:
    members: list[dict[str, Any]] = await get_json(observer, "/v1/members") or []
    return {m["Name"]: (m["statusText"], m["Tags"]) for m in members}


async def _all_see(observers: list[AgentProcess], name: str, status: str, **tags: str) -> bool:
    for observer in observers:
        seen = (await _statuses(observer)).get(name)
        if seen is None or seen[0] != status:
            return False
        if any(seen[1].get(k) != v for k, v in tags.items()):
            return False
    return True


async def test_five_servers_gossip_membership(tmp_path: Path) -> None:
    servers = _servers(tmp_path)
    for server in servers:
        server.start()
    try:
        await wait_for_leader(servers)
        for server in servers[1:]:
            await wait_for(
                partial(_all_see, servers, server.node_name, "alive", rack=server.node_name),
                within=30,
                what=f"{server.node_name} alive with its tags everywhere",
                agent=server,
            )

        # SIGHUP: s1 re-reads its config file's tags and the others learn them.
        (tmp_path / "s1.yml").write_text("tags: {zone: b}\n")
        servers[0].send_signal(signal.SIGHUP)
        await wait_for(
            lambda: _all_see(servers, "s1", "alive", zone="b"),
            within=10,
            what="s1's reloaded tags",
            agent=servers[0],
        )

        # kill -9: the others show it failed within the detection bound.
        victim, others = servers[4], servers[:4]
        victim.kill()
        await wait_for(
            lambda: _all_see(others, "s5", "failed"),
            within=DETECTION_SECONDS,
            what="s5 failed on every member",
            agent=others[0],
        )
        victim.start()
        await wait_for(
            lambda: _all_see(servers, "s5", "alive"),
            within=30,
            what="s5 alive again",
            agent=victim,
        )

        # A graceful stop leaves: the others show it left, not failed.
        leaving, staying = servers[3], [s for s in servers if s is not servers[3]]
        assert leaving.terminate() == 0
        await wait_for(
            lambda: _all_see(staying, "s4", "left"),
            within=DETECTION_SECONDS,
            what="s4 left on every member",
            agent=staying[0],
        )
    finally:
        for server in servers:
            server.stop_quietly()
