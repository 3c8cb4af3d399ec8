"""ReadIndex requests waiting for a heartbeat round to confirm the leader (§6.4 of the
Raft thesis): each records the commit index when it arrived and who acknowledged since."""

from __future__ import annotations

import attrs


@attrs.define
class ReadRequest:
    index: int
    requester: int
    ctx: bytes
    acks: set[int] = attrs.Factory(set)


@attrs.define
class ReadOnly:
    """Pending requests in arrival order, keyed by their (caller-unique) context."""

    _pending: dict[bytes, ReadRequest] = attrs.Factory(dict)

    def add(self, index: int, requester: int, ctx: bytes) -> bool:
        if ctx in self._pending:
            return False
        self._pending[ctx] = ReadRequest(index, requester, ctx)
        return True

    def ack(self, node_id: int, ctx: bytes) -> set[int] | None:
        request = self._pending.get(ctx)
        if request is None:
            return None
        request.acks.add(node_id)
        return request.acks

    def release(self, ctx: bytes) -> list[ReadRequest]:
        """Pop `ctx` and every request queued before it (a later confirmation covers them)."""
        if ctx not in self._pending:
            return []
        released: list[ReadRequest] = []
        for key in list(self._pending):
            released.append(self._pending.pop(key))
            if key == ctx:
                break
        return released

    def last_ctx(self) -> bytes:
        return next(reversed(self._pending), b"") if self._pending else b""

    def clear(self) -> None:
        self._pending.clear()
