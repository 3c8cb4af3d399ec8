"""A `BackendServer` over a test's backend namespace, started in a nursery."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from dkron_trio.backends.server import BackendServer
from dkron_trio.cluster.config import ClusterConfig
from dkron_trio.config import HostPort
from dkron_trio.store.memory import MemoryStore
from dkron_trio.store.replica import ReplicaStore
from tests.backends.conftest import BackendUnderTest

LEASE_TTL = 10.0
"""Long enough that no test loses its leader to a loaded machine (handovers use leave)."""


def server_config(name: str, tmp: Path, *, snapshot_threshold: int = 8192) -> ClusterConfig:
    address = HostPort("127.0.0.1", 0)
    return ClusterConfig(
        node_name=name,
        data_dir=tmp,
        rpc_bind=address,
        advertise=address,
        apply_timeout=10.0,
        snapshot_threshold=snapshot_threshold,
    )


@asynccontextmanager
async def running_server(
    backend: BackendUnderTest,
    name: str,
    tmp: Path,
    *,
    local: ReplicaStore | None = None,
    snapshot_threshold: int = 8192,
) -> AsyncIterator[tuple[BackendServer, ReplicaStore]]:
    store = local if local is not None else MemoryStore()
    config = server_config(name, tmp, snapshot_threshold=snapshot_threshold)
    server = BackendServer(config, store, backend.open(), lease_ttl=LEASE_TTL)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        yield server, store
        nursery.cancel_scope.cancel()


async def until(condition: Callable[[], Awaitable[bool]], *, within: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail after ``within`` seconds saying ``what``."""
    with trio.move_on_after(within):
        while True:
            if await condition():
                return
            await trio.sleep(0.02)
    raise AssertionError(f"not within {within}s: {what}")


async def wait_leader(server: BackendServer) -> None:
    async def leads() -> bool:
        return server.is_leader

    await until(leads, within=15, what="the server leads")
