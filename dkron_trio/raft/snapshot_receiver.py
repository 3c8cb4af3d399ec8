"""Follower side of a chunked InstallSnapshot: reassemble chunks in order.

Chunks are accepted only in sequence (offset == bytes received so far) for one snapshot
at a time; anything else is refused with the offset expected, so the leader resends from
there. A chunk at offset 0 always (re)starts a transfer, which covers a follower restart.
"""

from __future__ import annotations

import attrs

from dkron_trio.raft.types import Snapshot, SnapshotChunk, SnapshotMeta


@attrs.frozen
class ChunkResult:
    accepted: bool
    next_offset: int
    """Bytes received so far: where the leader should continue."""
    snapshot: Snapshot | None = None
    """The whole snapshot, once the last chunk arrived."""


@attrs.define
class SnapshotReceiver:
    _meta: SnapshotMeta | None = None
    _data: bytearray = attrs.Factory(bytearray)

    def receive(self, chunk: SnapshotChunk) -> ChunkResult:
        if chunk.offset == 0:
            self._meta, self._data = chunk.meta, bytearray()
        if self._meta != chunk.meta:
            return ChunkResult(accepted=False, next_offset=0)
        if len(self._data) != chunk.offset:
            return ChunkResult(accepted=False, next_offset=len(self._data))
        self._data.extend(chunk.data)
        if not chunk.done:
            return ChunkResult(accepted=True, next_offset=len(self._data))
        snapshot = Snapshot(chunk.meta, bytes(self._data))
        self.reset()
        return ChunkResult(accepted=True, next_offset=len(snapshot.data), snapshot=snapshot)

    def reset(self) -> None:
        self._meta, self._data = None, bytearray()
