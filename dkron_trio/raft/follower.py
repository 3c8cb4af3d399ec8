"""What a node does with what its leader sends: append entries (or point at where its log
diverges), follow the leader's commit index, and reassemble and install snapshots.

It touches only the log and the snapshot being received, and answers with the reply for
the leader: the core keeps role, term and timers, and restarts its membership history
from a snapshot this installs (`FollowerReply.installed`), so neither side reaches into
the other's state. The snapshot being received outlives role and term changes, as a
transfer in progress stays valid until a chunk says otherwise.
"""

from __future__ import annotations

from typing import Any

import attrs

from dkron_trio.raft.log import RaftLog
from dkron_trio.raft.snapshot_receiver import SnapshotReceiver
from dkron_trio.raft.types import Message, MessageType, Snapshot, SnapshotMeta

MT = MessageType


@attrs.frozen
class FollowerReply:
    message: Message
    installed: SnapshotMeta | None = None
    """The snapshot that replaced the log in answering: membership restarts from it."""


@attrs.define
class FollowerLog:
    _log: RaftLog
    _receiver: SnapshotReceiver = attrs.Factory(SnapshotReceiver)

    def receive(self, msg: Message) -> FollowerReply | None:
        """Handle an APPEND, HEARTBEAT or SNAPSHOT of the current leader (None: a SNAPSHOT
        without a chunk, ignored). The reply carries the message's term: the core hands
        over only messages of its own term."""
        if msg.type is MT.APPEND:
            return FollowerReply(self._append(msg))
        if msg.type is MT.HEARTBEAT:
            self._log.commit_to(min(msg.commit, self._log.last_index()))
            return FollowerReply(_reply(msg, MT.HEARTBEAT_RESPONSE, context=msg.context))
        return self._snapshot_chunk(msg)

    def _append(self, msg: Message) -> Message:
        if msg.index < self._log.committed:
            return _reply(msg, MT.APPEND_RESPONSE, index=self._log.committed)
        last_new = self._log.maybe_append(msg.index, msg.log_term, msg.commit, msg.entries)
        if last_new is not None:
            return _reply(msg, MT.APPEND_RESPONSE, index=last_new)
        hint_index, hint_term = self._log.find_conflict_by_term(
            min(msg.index, self._log.last_index()), msg.log_term
        )
        return _reply(
            msg,
            MT.APPEND_RESPONSE,
            index=msg.index,
            reject=True,
            reject_hint=hint_index,
            log_term=hint_term,
        )

    def _snapshot_chunk(self, msg: Message) -> FollowerReply | None:
        chunk = msg.snapshot
        if chunk is None:
            return None
        if chunk.meta.index <= self._log.committed:
            self._receiver.reset()
            return FollowerReply(_reply(msg, MT.APPEND_RESPONSE, index=self._log.committed))
        result = self._receiver.receive(chunk)
        if result.snapshot is None:
            return FollowerReply(
                _reply(
                    msg,
                    MT.SNAPSHOT_RESPONSE,
                    index=chunk.meta.index,
                    log_term=chunk.meta.term,
                    reject=not result.accepted,
                    reject_hint=result.next_offset,
                )
            )
        installed = self._restore(result.snapshot)
        reply = _reply(msg, MT.APPEND_RESPONSE, index=self._log.committed)
        return FollowerReply(reply, installed)

    def _restore(self, snapshot: Snapshot) -> SnapshotMeta | None:
        """Install a leader's snapshot, or just fast-forward commit if our log has it."""
        meta = snapshot.meta
        if self._log.match_term(meta.index, meta.term):
            self._log.commit_to(meta.index)
            return None
        self._log.restore(snapshot)
        return meta


def _reply(msg: Message, msg_type: MessageType, **fields: Any) -> Message:
    return Message(type=msg_type, to=msg.sender, sender=msg.to, term=msg.term, **fields)
