"""A fault-injecting TCP proxy in front of every node's RPC port.

Nodes advertise their proxy's port, so every RPC connection between two nodes passes here;
the dialing node is known from the source address it dials out from (`launch`). A partition
cuts chosen pairs of nodes: bytes between them are held (not lost, like a network whose TCP
retransmits until it heals) and flow again when the partition heals. Gossip (UDP) is not
proxied: a partitioned node still looks alive to the others' failure detector.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import trio

from dkron_trio.logs import get_logger

log = get_logger(__name__)

_CHUNK = 1 << 16


@attrs.define(eq=False)
class ChaosProxy:
    """`routes` maps a node name to the node's real RPC port; `sources` maps each node's
    source address to its name. `run` binds a free port for each node (no other process can
    take it between choosing and binding); `port` tells which, for the node to advertise."""

    _routes: dict[str, int]
    _sources: dict[str, str]
    _ports: dict[str, int] = attrs.field(factory=dict)
    _cut: set[frozenset[str]] = attrs.field(factory=set)
    _healed: trio.Event = attrs.field(factory=trio.Event)
    _connections: int = 0
    _held: int = 0

    @property
    def connections(self) -> int:
        return self._connections

    def port(self, name: str) -> int:
        """The port in front of node `name` (once `run` started)."""
        return self._ports[name]

    def partition(self, side: Iterable[str], rest: Iterable[str]) -> None:
        """Cut every pair with one node in `side` and the other in `rest`."""
        rest = list(rest)
        self._cut = {frozenset((a, b)) for a in side for b in rest if a != b}

    def heal(self) -> None:
        self._cut = set()
        self._healed.set()
        self._healed = trio.Event()

    def _blocked(self, a: str | None, b: str) -> bool:
        return a is not None and frozenset((a, b)) in self._cut

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for name, target in self._routes.items():
                listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
                self._ports[name] = listeners[0].socket.getsockname()[1]
                nursery.start_soon(self._serve, listeners, name, target)
            task_status.started()

    async def _serve(self, listeners: list[trio.SocketListener], name: str, target: int) -> None:
        async def handle(stream: trio.SocketStream) -> None:
            await self._handle(stream, name, target)

        await trio.serve_listeners(handle, listeners)

    async def _handle(self, client: trio.SocketStream, dest: str, target: int) -> None:
        peer = client.socket.getpeername()
        source = self._sources.get(str(peer[0]))
        self._connections += 1
        try:
            backend = await trio.open_tcp_stream("127.0.0.1", target)
        except OSError:
            await client.aclose()
            return
        async with client, backend, trio.open_nursery() as nursery:

            async def pump(src: trio.SocketStream, dst: trio.SocketStream) -> None:
                try:
                    while data := await src.receive_some(_CHUNK):
                        while self._blocked(source, dest):
                            self._held += 1
                            await self._healed.wait()
                        await dst.send_all(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
                nursery.cancel_scope.cancel()

            nursery.start_soon(pump, client, backend)
            nursery.start_soon(pump, backend, client)
