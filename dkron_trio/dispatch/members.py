"""Where nodes are and what they carry, as gossip sees them now."""

from typing import Protocol

from dkron_trio.config import HostPort
from dkron_trio.http.context import Member, MemberStatus


class Membership(Protocol):
    def members(self) -> list[Member]: ...


def _rpc_address(member: Member) -> HostPort | None:
    port = member.tags.get("port", "")
    return HostPort(member.addr, int(port)) if port.isdigit() else None


def alive_servers(gossip: Membership, me: str) -> list[HostPort]:
    """RPC addresses of the other servers gossip sees alive."""
    found = []
    for m in gossip.members():
        address = _rpc_address(m)
        alive = m.status is MemberStatus.ALIVE and m.tags.get("server") == "true"
        if alive and m.name != me and address is not None:
            found.append(address)
    return found


def address_of(gossip: Membership, name: str) -> HostPort | None:
    """The RPC address of the named node while gossip sees it alive."""
    for m in gossip.members():
        if m.name == name and m.status is MemberStatus.ALIVE:
            return _rpc_address(m)
    return None


def alive_nodes(gossip: Membership, region: str) -> list[tuple[str, dict[str, str]]]:
    """The nodes of `region` gossip sees alive, with their tags (jobs run only there)."""
    return [
        (m.name, dict(m.tags))
        for m in gossip.members()
        if m.status is MemberStatus.ALIVE and m.tags.get("region") == region
    ]
