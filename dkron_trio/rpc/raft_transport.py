"""Raft's Transport over RPC: one-way "raft" frames to peers found in an address book.

Each remote node id gets a Peer (its own connection and bounded drop-oldest queue), so a
slow or dead node only loses its own messages, which Raft retransmits. `send` never blocks
and never raises. Inbound frames are decoded with the Raft codec and pushed to `inbound`;
an undecodable body, a message for another node or a full inbox is counted and dropped
(the frame itself was well formed, so the connection stays up).

When a connection to a node breaks, one plain TCP dial probes its address: refused means
no process listens there any more (a crash or kill, the common failure), and
`on_peer_down` is told at once, so that Raft need not wait a whole election timeout to
replace a dead leader.

Heartbeats, votes and their replies (`URGENT`) jump their peer's queue: a leader pipelines
megabytes of entries to a follower busy applying, and a heartbeat queued behind them would
reach it after its election timeout.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import attrs
import trio

from dkron_trio.config import HostPort
from dkron_trio.logs import get_logger
from dkron_trio.raft.codec import CodecError, decode_message, encode_message
from dkron_trio.raft.transport import DEFAULT_INBOUND_BUFFER
from dkron_trio.raft.types import Message, MessageType
from dkron_trio.rpc.config import Overflow, RpcConfig
from dkron_trio.rpc.counters import Metric
from dkron_trio.rpc.errors import RpcUnavailable
from dkron_trio.rpc.framing import FrameError
from dkron_trio.rpc.peer import Peer
from dkron_trio.rpc.server import RpcServer

if TYPE_CHECKING:
    import random

log = get_logger(__name__)

RAFT_KIND = "raft"

URGENT = frozenset(
    {
        MessageType.HEARTBEAT,
        MessageType.HEARTBEAT_RESPONSE,
        MessageType.PRE_VOTE,
        MessageType.PRE_VOTE_RESPONSE,
        MessageType.VOTE,
        MessageType.VOTE_RESPONSE,
        MessageType.TIMEOUT_NOW,
        MessageType.READ_INDEX,
        MessageType.READ_INDEX_RESPONSE,
    }
)
"""Small messages Raft's liveness depends on; none of them needs to keep its place among
the entries (Raft takes messages in any order)."""


@attrs.define(eq=False)
class _Link:
    peer: Peer
    scope: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    started: bool = False


class RaftRpcTransport:
    """Implements raft.transport.Transport for node `node_id`, receiving through `server`.

    The config's overflow policy is forced to DROP_OLDEST. `run()` hosts the peers' sender
    tasks; messages sent before it starts wait in their peers' queues.
    """

    def __init__(
        self,
        node_id: int,
        server: RpcServer,
        addresses: Mapping[int, HostPort],
        config: RpcConfig,
        rng: random.Random,
        *,
        ssl_context: ssl.SSLContext | None = None,
        inbound_buffer: int = DEFAULT_INBOUND_BUFFER,
    ) -> None:
        self.node_id = node_id
        self.counters = server.counters
        self._config = attrs.evolve(config, overflow=Overflow.DROP_OLDEST)
        self._rng = rng
        self._ssl_context = ssl_context
        self._addresses = dict(addresses)
        self._links: dict[int, _Link] = {}
        self._nursery: trio.Nursery | None = None
        self._inbox_in, self._inbox_out = trio.open_memory_channel[Message](inbound_buffer)
        self.on_peer_down: Callable[[int], None] | None = None
        """Told the id of a node whose process is gone (see the module docstring)."""
        server.on_message(RAFT_KIND, self._receive)

    @property
    def inbound(self) -> trio.abc.ReceiveChannel[Message]:
        return self._inbox_out

    def set_address(self, node_id: int, address: HostPort) -> None:
        """Add or move a node; a moved node's queue and connection are dropped."""
        if self._addresses.get(node_id) != address:
            self.remove(node_id)
            self._addresses[node_id] = address

    def remove(self, node_id: int) -> None:
        """Forget a node (removed from the cluster): its sender stops, queued messages go."""
        self._addresses.pop(node_id, None)
        link = self._links.pop(node_id, None)
        if link is not None:
            link.scope.cancel()

    def send(self, messages: Sequence[Message]) -> None:
        for msg in messages:
            if msg.to == self.node_id:
                self._offer(msg)
                continue
            link = self._link(msg.to)
            if link is None:
                self.counters.add(Metric.RAFT_UNKNOWN_PEER)
                continue
            try:
                link.peer.send_nowait(RAFT_KIND, encode_message(msg), urgent=msg.type in URGENT)
            except FrameError as exc:
                self.counters.add(Metric.OVERSIZE_DROPPED)
                log.warning("raft message too large, dropped", to=msg.to, error=str(exc))

    async def call(self, node_id: int, kind: str, body: bytes) -> bytes:
        """A request to a known node over its Raft connection (forwarding to the leader);
        RpcUnavailable if its address is unknown, else as `Peer.call`."""
        link = self._link(node_id)
        if link is None:
            raise RpcUnavailable(f"no address for node {node_id}")
        return await link.peer.call(kind, body)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the senders until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for link in self._links.values():
                self._start(link)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    def _link(self, node_id: int) -> _Link | None:
        link = self._links.get(node_id)
        if link is None:
            address = self._addresses.get(node_id)
            if address is None:
                return None
            peer = Peer(
                address,
                self._config,
                self._rng,
                counters=self.counters,
                ssl_context=self._ssl_context,
                on_lost=functools.partial(self._lost, node_id, address),
            )
            link = self._links[node_id] = _Link(peer)
            self._start(link)
        return link

    def _start(self, link: _Link) -> None:
        if self._nursery is not None and not link.started:
            link.started = True
            self._nursery.start_soon(self._run_peer, link)

    async def _run_peer(self, link: _Link) -> None:
        with link.scope:
            await link.peer.run()

    def _lost(self, node_id: int, address: HostPort) -> None:
        if self._nursery is not None and self.on_peer_down is not None:
            self._nursery.start_soon(self._probe, node_id, address)

    async def _probe(self, node_id: int, address: HostPort) -> None:
        """Dial `address` once; a refused connection reports the node down (if it still
        lives at that address)."""
        with trio.move_on_after(self._config.connect_timeout):
            try:
                stream = await trio.open_tcp_stream(address.host, address.port)
            except OSError as exc:
                report = self.on_peer_down
                if _refused(exc) and self._addresses.get(node_id) == address and report:
                    log.info("raft peer down", node=node_id, address=str(address))
                    report(node_id)
                return
            await trio.aclose_forcefully(stream)

    async def _receive(self, body: bytes) -> None:
        try:
            msg = decode_message(body)
        except CodecError as exc:
            self.counters.add(Metric.RAFT_UNDECODABLE)
            log.warning("raft message undecodable, dropped", error=str(exc))
            return
        if msg.to != self.node_id:
            self.counters.add(Metric.RAFT_MISADDRESSED)
            return
        self._offer(msg)

    def _offer(self, msg: Message) -> None:
        try:
            self._inbox_in.send_nowait(msg)
        except trio.WouldBlock:
            self.counters.add(Metric.RAFT_INBOUND_DROPPED)


def _refused(exc: BaseException) -> bool:
    """Was a dial refused (nothing listening), as opposed to timing out or unreachable?
    trio reports a failed dial as an OSError caused by a group of the attempts' errors."""
    if isinstance(exc, ConnectionRefusedError):
        return True
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        return all(isinstance(e, ConnectionRefusedError) for e in cause.exceptions)
    return False
