"""ACLs through a real agent process and the real CLI: bootstrap once, tokens by role,
and tokens that survive a restart (they live in the replicated state on disk)."""

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import httpx
import trio

from tests.e2e.cluster import Cluster
from tests.e2e.process import AgentProcess, free_port, wait_for


async def cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DKRON_")}
    if token is not None:
        env["DKRON_TOKEN"] = token
    return await trio.run_process(
        [sys.executable, "-m", "dkron_trio", *args], capture_stdout=True,
        capture_stderr=True, check=False, env=env,
    )  # fmt: skip


async def status(agent: AgentProcess, method: str, path: str, token: str | None) -> int:
    headers = {} if token is None else {"X-Dkron-Token": token}
    async with httpx.AsyncClient(base_url=agent.url, timeout=10) as client:
        return (await client.request(method, path, headers=headers)).status_code


async def healthy(agent: AgentProcess) -> bool:
    try:
        return await status(agent, "GET", "/health", None) == 200
    except httpx.TransportError:
        return False


async def test_bootstrap_roles_and_restart_through_a_real_agent(tmp_path: Path) -> None:
    agent = AgentProcess(tmp_path / "s1" / "dkron.data", free_port(), node_name="s1")
    agent.extra_args = ("--acl-enabled",)
    agent.start()
    try:
        await wait_for(lambda: healthy(agent), within=30, what="health", agent=agent)
        assert await status(agent, "GET", "/v1/jobs", None) == 401
        address = ("--address", agent.url)
        made: list[subprocess.CompletedProcess[bytes]] = []

        async def bootstrapped() -> bool:
            made.append(await cli("acl", "bootstrap", *address))
            return made[-1].returncode == 0  # 503 until a leader is elected

        await wait_for(bootstrapped, within=30, what="acl bootstrap", agent=agent)
        admin = made[-1].stdout.decode().strip()
        assert len(admin) == 43
        again = await cli("acl", "bootstrap", *address)
        assert again.returncode == 1
        assert b"409" in again.stderr and b"bootstrap refused" in again.stderr

        created = await cli("acl", "token", "create", "--role", "read-only", *address, token=admin)
        assert created.returncode == 0, created.stderr
        reader = created.stdout.decode().strip()
        assert await status(agent, "GET", "/v1/jobs", reader) == 200
        assert await status(agent, "POST", "/v1/pause", reader) == 403
        assert await status(agent, "GET", "/v1/jobs", "wrong") == 401
        listed = await cli("jobs", "list", *address, token=reader)
        assert listed.returncode == 0, listed.stderr
        refused = await cli("acl", "token", "list", *address, token=reader)
        assert refused.returncode == 1 and b"403" in refused.stderr

        assert agent.terminate() == 0
        agent.start()
        await wait_for(lambda: healthy(agent), within=30, what="health again", agent=agent)
        assert await status(agent, "GET", "/v1/jobs", reader) == 200
        tokens = await cli("acl", "token", "list", "--json", *address, token=admin)
        assert tokens.returncode == 0, tokens.stderr
        assert tokens.stdout.count(b'"role"') == 2
        assert admin.encode() not in tokens.stdout and reader.encode() not in tokens.stdout
        assert (tmp_path / "s1" / "dkron.data" / "state.db").read_bytes().find(admin.encode()) == -1
    finally:
        agent.stop_quietly()


async def test_one_bootstrap_wins_on_a_cluster(tmp_path: Path) -> None:
    """Bootstraps sent to all three servers at once: the state machine admits exactly one;
    a token created through one server works at once through the others."""
    cluster = Cluster.create(tmp_path, 3, "--acl-enabled")
    cluster.start()
    try:
        for server in cluster:
            await wait_for(partial(healthy, server), within=30, what="health", agent=server)
        answers: dict[str, httpx.Response] = {}

        async def bootstrap(server: AgentProcess) -> None:
            async def answered() -> bool:
                async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
                    response = await client.post("/v1/acl/bootstrap")
                answers[server.node_name] = response
                return response.status_code != 503  # no leader yet

            await wait_for(answered, within=40, what="a bootstrap answer", agent=server)

        async with trio.open_nursery() as nursery:
            for server in cluster:
                nursery.start_soon(bootstrap, server)
        codes = sorted(r.status_code for r in answers.values())
        assert codes == [201, 409, 409], {n: r.text for n, r in answers.items()}
        [won] = [r.json() for r in answers.values() if r.status_code == 201]
        admin = {"X-Dkron-Token": won["token"]}
        first, *others = cluster.servers
        async with httpx.AsyncClient(base_url=first.url, timeout=10) as client:
            made = await client.post("/v1/acl/tokens", json={"role": "operator"}, headers=admin)
        assert made.status_code == 201
        operator = made.json()["token"]
        for server in others:
            assert await status(server, "GET", "/v1/busy", operator) == 200
            assert await status(server, "POST", "/v1/pause", operator) == 403
    finally:
        cluster.stop()
