"""How a RaftNode talks to its peers: a narrow `Transport` Protocol, plus the in-memory twin
(`MemoryNetwork` / `MemoryTransport`) the shell tests use.

Raft tolerates lost, duplicated and reordered messages, so sending is fire-and-forget:
`send` never blocks the node's driver loop (a slow or dead peer must not stall the others);
a transport that cannot queue a message drops it and Raft retransmits. Received messages
come out of one channel, already decoded; the node feeds them to `RaftCore.step`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs
import trio

from dkron_trio.raft.types import Message

DEFAULT_INBOUND_BUFFER = 1024
"""Messages a MemoryTransport holds for its node before it drops further ones."""


class Transport(Protocol):
    """Carries Raft messages between nodes. `send` routes each message by `Message.to`."""

    def send(self, messages: Sequence[Message]) -> None:
        """Queue `messages` for delivery and return at once (never blocks, never raises for
        an unreachable or unknown peer: such messages are dropped)."""
        ...

    @property
    def inbound(self) -> trio.abc.ReceiveChannel[Message]:
        """Messages addressed to this node, in arrival order."""
        ...


@attrs.define(eq=False)
class MemoryTransport:
    """One node's end of a MemoryNetwork."""

    node_id: int
    _network: MemoryNetwork
    _send_channel: trio.MemorySendChannel[Message]
    _receive_channel: trio.MemoryReceiveChannel[Message]

    def send(self, messages: Sequence[Message]) -> None:
        for msg in messages:
            self._network.deliver(self.node_id, msg)

    @property
    def inbound(self) -> trio.abc.ReceiveChannel[Message]:
        return self._receive_channel

    def offer(self, msg: Message) -> bool:
        """Put a message in this node's inbox; False (dropped) when it is full."""
        try:
            self._send_channel.send_nowait(msg)
        except trio.WouldBlock:
            return False
        return True


@attrs.define(eq=False)
class MemoryNetwork:
    """Delivers messages between MemoryTransports at once, in order, unless a link is cut.

    `cut(a, b)` drops everything between a and b (both ways) until `heal()`; `isolate(a)`
    cuts a from everyone. Counters tell tests what was delivered and dropped."""

    inbound_buffer: int = DEFAULT_INBOUND_BUFFER
    _nodes: dict[int, MemoryTransport] = attrs.field(factory=dict)
    _cut: set[frozenset[int]] = attrs.field(factory=set)
    _isolated: set[int] = attrs.field(factory=set)
    delivered: int = 0
    dropped: int = 0

    def transport(self, node_id: int) -> MemoryTransport:
        """A fresh endpoint for `node_id` (replacing an earlier one: a restarted node gets an
        empty inbox, as after a real reconnect)."""
        send, receive = trio.open_memory_channel[Message](self.inbound_buffer)
        endpoint = MemoryTransport(node_id, self, send, receive)
        self._nodes[node_id] = endpoint
        return endpoint

    def remove(self, node_id: int) -> None:
        """Take a node off the network (crashed): messages to it are dropped."""
        self._nodes.pop(node_id, None)

    def cut(self, a: int, b: int) -> None:
        self._cut.add(frozenset((a, b)))

    def isolate(self, node_id: int) -> None:
        self._isolated.add(node_id)

    def heal(self) -> None:
        self._cut.clear()
        self._isolated.clear()

    def deliver(self, sender: int, msg: Message) -> None:
        target = self._nodes.get(msg.to)
        blocked = (
            target is None
            or sender in self._isolated
            or msg.to in self._isolated
            or frozenset((sender, msg.to)) in self._cut
        )
        if target is not None and not blocked and target.offer(msg):
            self.delivered += 1
        else:
            self.dropped += 1
