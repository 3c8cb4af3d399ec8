"""A cluster of real ``dkron-trio agent --server`` processes on 127.0.0.1, for tests."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx

from tests.e2e.process import AgentProcess, free_port, wait_for


@attrs.define
class Cluster:
    servers: list[AgentProcess]

    @classmethod
    def create(cls, root: Path, size: int, *extra: str) -> "Cluster":
        servers = [
            AgentProcess(root / f"s{i}" / "dkron.data", free_port(), node_name=f"s{i}")
            for i in range(1, size + 1)
        ]
        for server in servers:
            joins = [
                a
                for other in servers
                if other is not server
                for a in ("--join", other.gossip_address)
            ]
            server.extra_args = ("--bootstrap-expect", str(size), *joins, *extra)
        return cls(servers)

    def __iter__(self) -> Iterator[AgentProcess]:
        return iter(self.servers)

    def start(self) -> None:
        for server in self.servers:
            server.start()

    def stop(self) -> None:
        for server in self.servers:
            server.stop_quietly()

    def by_name(self, name: str) -> AgentProcess:
        return next(s for s in self.servers if s.node_name == name)


async def get_json(server: AgentProcess, path: str) -> Any:
    """The JSON body of a 200 answer, or None for any other answer or no answer."""
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            response = await client.get(path)
    except httpx.TransportError:
        return None
    return response.json() if response.status_code == 200 else None


async def leader_of(servers: list[AgentProcess]) -> str | None:
    """The leader every given server names, if they all name the same one of them."""
    names = set()
    for server in servers:
        body = await get_json(server, "/v1/leader")
        if body is None:
            return None
        names.add(body["Name"])
    alive = {s.node_name for s in servers}
    return names.pop() if len(names) == 1 and names <= alive else None


async def wait_for_leader(servers: list[AgentProcess], within: float = 30) -> str:
    found: list[str] = []

    async def agreed() -> bool:
        name = await leader_of(servers)
        if name is not None:
            found.append(name)
        return name is not None

    await wait_for(agreed, within=within, what="an agreed leader", agent=servers[0])
    return found[-1]


async def post_job(server: AgentProcess, job: dict[str, Any]) -> httpx.Response | None:
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            return await client.post("/v1/jobs", json=job)
    except httpx.TransportError:
        return None
