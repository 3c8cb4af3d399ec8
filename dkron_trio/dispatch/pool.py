"""One RPC connection per remote address, kept for reuse (orders, reports, output)."""

import random
import ssl

import attrs
import trio

from dkron_trio.config import HostPort
from dkron_trio.rpc.config import RpcConfig
from dkron_trio.rpc.peer import Peer


@attrs.define(eq=False)
class PeerPool:
    """Run `run` in a nursery; peers are dialled on first use and kept."""

    _config: RpcConfig = attrs.Factory(RpcConfig)
    _rng: random.Random = attrs.Factory(random.Random)
    _ssl_context: ssl.SSLContext | None = None
    """Client TLS for every connection (RPC with mutual TLS), None for plain TCP."""
    _peers: dict[HostPort, Peer] = attrs.field(init=False, factory=dict)
    _nursery: trio.Nursery | None = attrs.field(init=False, default=None)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def peer(self, address: HostPort) -> Peer:
        peer = self._peers.get(address)
        if peer is None:
            if self._nursery is None:
                raise RuntimeError("PeerPool.run() must be started first")
            peer = self._peers[address] = Peer(
                address, self._config, self._rng, ssl_context=self._ssl_context
            )
            self._nursery.start_soon(peer.run)
        return peer

    async def call(self, address: HostPort, kind: str, body: bytes) -> bytes:
        return await self.peer(address).call(kind, body)

    def send_nowait(self, address: HostPort, kind: str, body: bytes) -> bool:
        return self.peer(address).send_nowait(kind, body)
