"""The cluster as the HTTP API shows it, from the Raft server's point of view."""

from collections.abc import Mapping
from typing import Protocol

import attrs

from dkron_trio.cluster.server import RaftServer
from dkron_trio.config import parse_host_port
from dkron_trio.http.context import Member
from dkron_trio.raft.types import NONE
from dkron_trio.store.base import RaftMember


class Membership(Protocol):
    def members(self) -> list[Member]: ...


@attrs.define(eq=False)
class RaftClusterView:
    """`ClusterView`: members as gossip reports them (with their tags and status), the
    leader from Raft. Without gossip, the Raft configuration's address book stands in."""

    _server: RaftServer
    _tags: Mapping[str, str]
    _gossip: Membership | None = None

    def _member(self, member: RaftMember) -> Member:
        address = parse_host_port(member.address)
        if member.node_id == self._server.me.node_id:
            tags = dict(self._tags)
        else:
            tags = {"server": "true", "dkron_server": "true"}
        tags["rpc_addr"] = member.address
        return Member(member.name, address.host, address.port, tags)

    def members(self) -> list[Member]:
        if self._gossip is not None:
            return self._gossip.members()
        return [self._member(m) for m in self._server.members()]

    def leader(self) -> Member | None:
        leader_id = self._server.node.leader_id
        if leader_id == NONE:
            return None
        member = self._server.member(leader_id)
        if member is None:
            return None
        if self._gossip is not None:
            for seen in self._gossip.members():
                if seen.name == member.name:
                    return seen
        return self._member(member)

    def is_leader(self) -> bool:
        return self._server.node.is_leader

    async def linearize(self) -> None:
        await self._server.command_log.linearize()
