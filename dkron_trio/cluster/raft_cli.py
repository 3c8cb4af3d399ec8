"""``dkron-trio raft list-peers`` and ``raft remove-peer``: talk to a server's RPC port, as
Dkron's commands talk to its gRPC port (``--rpc-addr``)."""

import random
import sys
from functools import partial

import trio

from dkron_trio.cluster import wire
from dkron_trio.config import parse_host_port
from dkron_trio.rpc.config import RpcConfig
from dkron_trio.rpc.errors import RpcError
from dkron_trio.rpc.peer import call_address

EXIT_OK = 0
EXIT_FAILED = 1
DEFAULT_RPC_ADDR = "127.0.0.1:6868"
_TIMEOUT = 5.0


def _run(rpc_addr: str, kind: str, body: bytes) -> bytes | None:
    try:
        address = parse_host_port(rpc_addr, 6868)
        return trio.run(
            partial(
                call_address,
                address,
                kind,
                body,
                config=RpcConfig(),
                rng=random.Random(),
                reply_within=_TIMEOUT,
            )
        )
    except (RpcError, ValueError) as exc:
        print(f"error: {rpc_addr}: {exc or type(exc).__name__}", file=sys.stderr)
        return None


def list_peers(rpc_addr: str) -> int:
    reply = _run(rpc_addr, wire.PEERS, b"")
    if reply is None:
        return EXIT_FAILED
    rows = [("Node", "ID", "Address", "State", "Voter")]
    for peer in wire.decode_peers(reply):
        state = "leader" if peer.leader else "follower"
        m = peer.member
        rows.append((m.name, str(m.node_id), m.address, state, str(peer.voter).lower()))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def remove_peer(rpc_addr: str, peer: str) -> int:
    ref: int | str = int(peer) if peer.isdigit() else peer
    if _run(rpc_addr, wire.REMOVE_PEER, wire.encode_peer_ref(ref)) is None:
        return EXIT_FAILED
    print(f"removed peer {peer}")
    return EXIT_OK
