"""The cluster as the HTTP API shows it on a server with an external backend: members as
gossip reports them, the leader as the holder of the backend's lease."""

from typing import Protocol

import attrs

from dkron_trio.backends.server import BackendServer
from dkron_trio.http.context import Member


class Membership(Protocol):
    def members(self) -> list[Member]: ...


@attrs.define(eq=False)
class BackendClusterView:
    _server: BackendServer
    _gossip: Membership

    def members(self) -> list[Member]:
        return self._gossip.members()

    def leader(self) -> Member | None:
        name = self._server.leader_name
        for member in self._gossip.members():
            if member.name == name:
                return member
        return None

    def is_leader(self) -> bool:
        return self._server.is_leader

    async def linearize(self) -> None:
        await self._server.command_log.linearize()
