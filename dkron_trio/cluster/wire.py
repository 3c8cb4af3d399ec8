"""The bodies of the cluster's RPC requests (msgpack), and how an apply's result travels.

A write forwarded to the leader comes back as the state machine's result: a job, a count,
nothing, or the refusal the store's rules gave (raised again on the forwarding server, so a
client sees the same 400/404/409 on any server). Every decoder here turns malformed bytes
into WireError and nothing else.
"""

from collections.abc import Sequence
from typing import Any

import attrs
import msgpack

from dkron_trio.acl import AclToken
from dkron_trio.commands import CommandError, SetJob, SetToken, decode_command, encode_command
from dkron_trio.job import Job, ValidationError
from dkron_trio.store.base import (
    AclBootstrapDone,
    ClusterUnavailable,
    DependencyCycle,
    JobHasChildren,
    JobNotFound,
    ParentNotFound,
    RaftMember,
    TokenExists,
    TokenNotFound,
)

APPLY = "apply"
"""Request: command bytes. Reply: `encode_reply` of the result and the leader's applied index."""
JOIN = "join"
"""Request: `encode_member`. Reply: empty once the leader committed the new member."""
HELLO = "hello"
"""Request: `encode_hello`. Reply: `encode_hello` of what the receiver knows (bootstrap)."""
PEERS = "raft_peers"
"""Request: empty. Reply: `encode_peers` (the Raft configuration as this server sees it)."""
REMOVE_PEER = "raft_remove_peer"
"""Request: msgpack node id or name. Reply: empty once the removal is committed."""
TRANSFER = "raft_transfer"
"""Request: empty. Reply: empty; the receiver, if leader, hands leadership to the caller."""


class WireError(ValueError):
    """Bytes that are not a valid cluster RPC body."""


def _pack(value: object) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise WireError(f"not msgpack: {exc}") from None


# -- apply results --------------------------------------------------------------------------


def encode_reply(result: object, applied: int) -> bytes:
    return _pack([applied, _result(result)])


def _result(result: object) -> list[Any]:
    match result:
        case None:
            return ["none"]
        case bool() | int():
            return ["int", int(result)]
        case tuple() if all(isinstance(item, str) for item in result):
            return ["ids", list(result)]
        case Job():
            return ["job", encode_command(SetJob(result), verify=False)]
        case ValidationError():
            return ["invalid", result.field, result.message]
        case JobNotFound():
            return ["job_not_found", result.name]
        case ParentNotFound():
            return ["parent_not_found", result.name, result.parent]
        case DependencyCycle():
            return ["cycle", result.name, result.parent]
        case JobHasChildren():
            return ["has_children", result.name, list(result.children)]
        case CommandError():
            return ["bad_command", str(result)]
        case ClusterUnavailable():
            return ["unavailable", str(result)]
        case AclToken():
            return ["token", encode_command(SetToken(result), verify=False)]
        case TokenNotFound():
            return ["token_not_found", result.token_id]
        case TokenExists():
            return ["token_exists", result.token_id]
        case AclBootstrapDone():
            return ["bootstrap_done"]
    raise WireError(f"cannot send a result of type {type(result).__name__}")


def decode_reply(data: bytes) -> tuple[object, int]:
    """(result, leader's applied index); a refusal comes back as the exception object."""
    match _unpack(data):
        case [int() as applied, [str() as tag, *args]]:
            try:
                return _rebuild(tag, args), applied
            except (TypeError, ValueError) as exc:
                raise WireError(f"bad {tag!r} result: {exc}") from None
    raise WireError("apply reply must be [applied, [tag, ...]]")


def _rebuild(tag: str, args: list[Any]) -> object:
    match tag, args:
        case "none", []:
            return None
        case "int", [int() as n]:
            return n
        case "ids", [list() as ids] if all(isinstance(i, str) for i in ids):
            return tuple(ids)
        case "job", [bytes() as data]:
            try:
                cmd = decode_command(data)
            except CommandError as exc:
                raise WireError(str(exc)) from None
            if isinstance(cmd, SetJob):
                return cmd.job
        case "invalid", [str() as field, str() as message]:
            return ValidationError(field, message)
        case "job_not_found", [str() as name]:
            return JobNotFound(name)
        case "parent_not_found", [str() as name, str() as parent]:
            return ParentNotFound(name, parent)
        case "cycle", [str() as name, str() as parent]:
            return DependencyCycle(name, parent)
        case "has_children", [str() as name, list() as children]:
            return JobHasChildren(name, tuple(str(c) for c in children))
        case "bad_command", [str() as message]:
            return CommandError(message)
        case "unavailable", [str() as message]:
            return ClusterUnavailable(message)
        case "token", [bytes() as data]:
            try:
                cmd = decode_command(data)
            except CommandError as exc:
                raise WireError(str(exc)) from None
            if isinstance(cmd, SetToken):
                return cmd.token
        case "token_not_found", [str() as token_id]:
            return TokenNotFound(token_id)
        case "token_exists", [str() as token_id]:
            return TokenExists(token_id)
        case "bootstrap_done", []:
            return AclBootstrapDone()
    raise WireError(f"unknown result {tag!r} with {len(args)} values")


# -- membership -----------------------------------------------------------------------------


def encode_member(member: RaftMember) -> bytes:
    return _pack([member.node_id, member.name, member.address])


def decode_member(data: bytes) -> RaftMember:
    match _unpack(data):
        case [int() as node_id, str() as name, str() as address] if node_id > 0 and name:
            return RaftMember(node_id, name, address)
    raise WireError("member must be [node_id > 0, name, address]")


@attrs.frozen
class Hello:
    """What a server tells another while the cluster forms: itself, the servers it knows,
    how many it expects, and whether it already belongs to a formed cluster."""

    servers: tuple[RaftMember, ...]
    expect: int
    formed: bool


def encode_hello(hello: Hello) -> bytes:
    servers = [[m.node_id, m.name, m.address] for m in hello.servers]
    return _pack([servers, hello.expect, hello.formed])


def decode_hello(data: bytes) -> Hello:
    match _unpack(data):
        case [list() as servers, int() as expect, bool() as formed]:
            return Hello(tuple(decode_member(_pack(s)) for s in servers), expect, formed)
    raise WireError("hello must be [servers, expect, formed]")


@attrs.frozen
class Peer:
    """One row of `raft list-peers`."""

    member: RaftMember
    voter: bool
    leader: bool


def encode_peers(peers: Sequence[Peer]) -> bytes:
    return _pack(
        [[p.member.node_id, p.member.name, p.member.address, p.voter, p.leader] for p in peers]
    )


def decode_peers(data: bytes) -> list[Peer]:
    rows = _unpack(data)
    if not isinstance(rows, list):
        raise WireError("peers must be a list")
    peers = []
    for row in rows:
        match row:
            case [int() as node_id, str() as name, str() as address, bool() as v, bool() as lead]:
                peers.append(Peer(RaftMember(node_id, name, address), v, lead))
            case _:
                raise WireError("peer must be [id, name, address, voter, leader]")
    return peers


def encode_peer_ref(ref: int | str) -> bytes:
    return _pack(ref)


def decode_peer_ref(data: bytes) -> int | str:
    ref = _unpack(data)
    if isinstance(ref, bool) or not isinstance(ref, int | str) or ref in (0, ""):
        raise WireError("peer reference must be a node id or a node name")
    return ref
