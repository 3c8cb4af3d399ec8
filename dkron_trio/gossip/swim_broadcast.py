"""The piggyback queue: news about members waiting to ride on outgoing datagrams.

Each item is sent a limited number of times (retransmit_mult * ceil(log10(n + 1)), enough for
an epidemic to reach everyone with high probability) and newer news about a member replaces
older news about the same member, so stale states are never spread.
"""

from __future__ import annotations

import math

import attrs

from dkron_trio.gossip.messages import Message


def retransmit_limit(mult: int, members: int) -> int:
    return mult * math.ceil(math.log10(members + 1))


@attrs.define
class _Item:
    msg: Message
    size: int
    order: int
    transmits: int = 0


@attrs.define
class BroadcastQueue:
    """Keyed by the member the news is about (that key is what invalidation compares)."""

    _items: dict[str, _Item] = attrs.field(factory=dict)
    _order: int = 0

    def __len__(self) -> int:
        return len(self._items)

    def queue(self, node: str, msg: Message, size: int) -> None:
        """Add news about `node`, dropping whatever was queued about it before."""
        self._order += 1
        self._items[node] = _Item(msg, size, self._order)

    def pending(self, node: str) -> bool:
        return node in self._items

    def transmits(self, node: str) -> int | None:
        item = self._items.get(node)
        return None if item is None else item.transmits

    def take(self, room: int, limit: int) -> list[Message]:
        """Messages fitting in `room` bytes, least-sent and then newest first; each taken
        message counts one transmission and leaves the queue after `limit` of them."""
        if not self._items or room <= 0:
            return []
        picked: list[Message] = []
        ranked = sorted(self._items.items(), key=lambda kv: (kv[1].transmits, -kv[1].order))
        for node, item in ranked:
            if item.size > room:
                continue
            room -= item.size
            picked.append(item.msg)
            item.transmits += 1
            if item.transmits >= limit:
                del self._items[node]
        return picked
