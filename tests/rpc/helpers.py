"""Shared pieces of the RPC tests: a listener on a free loopback port, waiting on conditions."""

from __future__ import annotations

import random
from collections.abc import Callable

import trio

from dkron_trio.config import HostPort
from dkron_trio.rpc.config import RpcConfig
from dkron_trio.rpc.peer import Peer
from dkron_trio.rpc.server import RpcServer

LOOPBACK = "127.0.0.1"
DEADLINE = 10.0
"""Seconds a real-socket test waits for a condition before failing."""

FAST = RpcConfig(backoff_initial=0.01, backoff_max=0.05, call_timeout=DEADLINE)
"""Short reconnect delays so that reconnect tests on real sockets finish quickly."""


async def echo(body: bytes) -> bytes:
    return body


async def start_server(nursery: trio.Nursery, server: RpcServer) -> HostPort:
    port: int = await nursery.start(server.run, HostPort(LOOPBACK, 0))
    return HostPort(LOOPBACK, port)


async def start_peer(
    nursery: trio.Nursery, address: HostPort, config: RpcConfig = FAST, seed: int = 1
) -> Peer:
    peer = Peer(address, config, random.Random(seed))
    await nursery.start(peer.run)
    return peer


async def wait_for(condition: Callable[[], bool], deadline: float = DEADLINE) -> None:
    """Wait until `condition()` holds (checked every millisecond), failing after `deadline`."""
    with trio.fail_after(deadline):
        while True:
            if condition():
                return
            await trio.sleep(0.001)
