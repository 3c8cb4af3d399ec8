"""What a node tracks only while it leads one term: follower progress and replication,
commitment, leadership transfer, ReadIndex confirmation and proposal flow control.

A `Leadership` lives exactly as long as one term's leadership; stepping down discards it,
so none of this state can leak into a later term.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs

from dkron_trio.raft import quorum
from dkron_trio.raft.errors import (
    InvariantViolated,
    LogCompacted,
    ProposalDropped,
    TransferRejected,
)
from dkron_trio.raft.log import RaftLog
from dkron_trio.raft.membership import ConfHistory
from dkron_trio.raft.progress import SNAPSHOT_RESEND_AFTER, Inflights, Progress, ProgressState
from dkron_trio.raft.readonly import ReadOnly
from dkron_trio.raft.types import (
    NONE,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    RaftConfig,
    ReadState,
    SnapshotChunk,
)

MT = MessageType


@attrs.define
class Leadership:
    _id: int
    _term: int
    _config: RaftConfig
    _log: RaftLog
    _conf: ConfHistory
    _outbox: list[Message]
    """The core's outbox (shared): messages go out with the next Ready."""
    _read_states: list[ReadState]
    """The core's answered local reads (shared)."""
    progress: dict[int, Progress] = attrs.Factory(dict)
    transferee: int = NONE
    pending_conf_index: int = 0
    """Index of the latest membership change; another waits until it is applied."""
    _heartbeat_elapsed: int = 0
    _read_only: ReadOnly = attrs.Factory(ReadOnly)
    _reads_before_commit: list[tuple[int, bytes]] = attrs.Factory(list)
    """ReadIndex requests held until this leader commits an entry of its term."""
    _uncommitted: deque[tuple[int, int]] = attrs.Factory(deque)
    """(index, size) of this leader's proposals not yet committed."""
    _uncommitted_size: int = 0
    _broadcast_pending: bool = False
    _commit_pending: bool = False

    def start(self) -> None:
        """Take office: track every member, then append the no-op barrier of this term."""
        last = self._log.last_index()
        for member in sorted(self._conf.current.members):
            self._add_progress(member, last + 1)
        own = self.progress.get(self._id)
        if own is not None:
            own.match = self._log.stable_last_index()
            own.become_replicate()
            own.recent_active = True
        self.pending_conf_index = last
        self._log.append([Entry(self._term, last + 1)])
        self._broadcast_pending = True

    def _add_progress(self, node: int, next_index: int) -> None:
        self.progress[node] = Progress(
            match=0,
            next=next_index,
            inflights=Inflights(self._config.max_inflight_msgs),
            is_learner=node in self._conf.current.learners,
        )

    # -- time -----------------------------------------------------------------------------

    def tick(self, election_timeout_passed: bool) -> bool:
        """One tick; False if the leader must step down (no active quorum)."""
        self._heartbeat_elapsed += 1
        if election_timeout_passed:
            if self._config.check_quorum and not self._quorum_active():
                return False
            self.transferee = NONE
        if self._heartbeat_elapsed >= self._config.heartbeat_ticks:
            self._heartbeat_elapsed = 0
            self._broadcast_heartbeat(self._read_only.last_ctx())
        return True

    def _quorum_active(self) -> bool:
        active = {i for i, p in self.progress.items() if p.recent_active or i == self._id}
        for i, p in self.progress.items():
            if i != self._id:
                p.recent_active = False
        return quorum.has_quorum(self._conf.current.voters, active)

    # -- proposals ------------------------------------------------------------------------

    def check_can_propose(self, size: int) -> None:
        if self.transferee != NONE:
            raise ProposalDropped(f"leadership transfer to {self.transferee} in progress")
        if self._uncommitted and self._uncommitted_size + size > self._config.max_uncommitted_size:
            raise ProposalDropped(
                f"{self._uncommitted_size} bytes uncommitted (max_uncommitted_size "
                f"{self._config.max_uncommitted_size})"
            )

    def append(self, entry_type: EntryType, data: bytes) -> int:
        """Append one of this leader's entries; it is sent (batched) with the next Ready."""
        index = self._log.last_index() + 1
        self._log.append([Entry(self._term, index, entry_type, data)])
        self._uncommitted.append((index, len(data)))
        self._uncommitted_size += len(data)
        self._broadcast_pending = True
        return index

    def transfer(self, target: int) -> None:
        if target == self._id:
            raise TransferRejected(f"node {target} is already the leader")
        if target not in self._conf.current.voters:
            raise TransferRejected(f"node {target} is not a voter")
        if self.transferee == target:
            return
        self.transferee = target
        if self.progress[target].match == self._log.last_index():
            self._send(MT.TIMEOUT_NOW, target)
        else:
            self._send_append(target, send_if_empty=True)

    # -- Ready ----------------------------------------------------------------------------

    def has_pending(self) -> bool:
        return self._broadcast_pending or self._commit_pending

    def flush(self) -> None:
        """Send what proposals and commit advances since the last Ready call for: one
        APPEND per follower however many proposals arrived (batching)."""
        if self._broadcast_pending or self._commit_pending:
            for peer in self.progress:
                if peer != self._id:
                    self._send_append(peer, send_if_empty=self._commit_pending)
        self._broadcast_pending = False
        self._commit_pending = False

    def persisted(self) -> None:
        """The shell persisted more of our log: count our own copy, maybe commit."""
        own = self.progress.get(self._id)
        if own is not None:
            own.maybe_update(self._log.stable_last_index())
        self._maybe_commit()

    # -- messages -------------------------------------------------------------------------

    def step(self, msg: Message) -> None:
        if msg.type is MT.READ_INDEX:
            self.read(msg.sender, msg.context)
            return
        pr = self.progress.get(msg.sender)
        if pr is None:
            return
        if msg.type is MT.APPEND_RESPONSE:
            pr.recent_active = True
            self._handle_append_response(msg, pr)
        elif msg.type is MT.HEARTBEAT_RESPONSE:
            pr.recent_active = True
            self._handle_heartbeat_response(msg, pr)
        elif msg.type is MT.SNAPSHOT_RESPONSE:
            pr.recent_active = True
            self._handle_snapshot_response(msg, pr)

    def _handle_append_response(self, msg: Message, pr: Progress) -> None:
        peer = msg.sender
        if msg.reject:
            next_probe = msg.reject_hint
            if msg.log_term > 0:
                next_probe, _ = self._log.find_conflict_by_term(msg.reject_hint, msg.log_term)
            if pr.maybe_decrease_to(msg.index, next_probe):
                if pr.state is ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(peer, send_if_empty=True)
            return
        was_paused = pr.is_paused()
        if not (
            pr.maybe_update(msg.index)
            or (pr.match == msg.index and pr.state is ProgressState.PROBE)
        ):
            return
        if pr.state is ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state is ProgressState.SNAPSHOT:
            snapshot = pr.pending_snapshot
            if pr.match + 1 >= self._log.first_index():
                pr.become_probe()
                pr.become_replicate()
            elif snapshot is None or pr.match >= snapshot.meta.index:
                # It installed the snapshot it was sent, but we have compacted past it
                # since: probe again, which starts a transfer of the current snapshot.
                pr.become_probe()
        else:
            pr.inflights.free_le(msg.index)
        if not self._maybe_commit() and was_paused and not self._commit_pending:
            # It may have missed commit updates while paused; a broadcast already covers it.
            self._send_append(peer, send_if_empty=True)
        while self._send_append(peer, send_if_empty=False):
            pass
        if peer == self.transferee and pr.match == self._log.last_index():
            self._send(MT.TIMEOUT_NOW, peer)

    def _handle_heartbeat_response(self, msg: Message, pr: Progress) -> None:
        pr.probe_sent = False
        if pr.state is ProgressState.REPLICATE and pr.inflights.full():
            # The follower is alive but acknowledged nothing: its APPENDs may have been
            # lost (e.g. it restarted). Free a slot so a probe-like APPEND can go out.
            pr.inflights.free_first_one()
        if pr.state is ProgressState.SNAPSHOT:
            pr.snapshot_stall += 1
            if pr.snapshot_stall >= SNAPSHOT_RESEND_AFTER:
                self._send_snapshot_chunk(msg.sender, pr)
        elif pr.match < self._log.last_index():
            self._send_append(msg.sender, send_if_empty=True)
        if msg.context:
            acks = self._read_only.ack(msg.sender, msg.context)
            if acks is not None and quorum.has_quorum(self._conf.current.voters, acks):
                for request in self._read_only.release(msg.context):
                    self._answer_read(request.requester, request.index, request.ctx)

    def _handle_snapshot_response(self, msg: Message, pr: Progress) -> None:
        snap = pr.pending_snapshot
        if pr.state is not ProgressState.SNAPSHOT or snap is None:
            return
        if (msg.index, msg.log_term) != (snap.meta.index, snap.meta.term):
            return
        pr.snapshot_offset = min(msg.reject_hint, len(snap.data))
        self._send_snapshot_chunk(msg.sender, pr)

    # -- replication ----------------------------------------------------------------------

    def _send_append(self, peer: int, *, send_if_empty: bool) -> bool:
        """Send the next APPEND `peer` needs, or start a snapshot if its entries are
        compacted. False if nothing was sent (paused, or nothing to send)."""
        pr = self.progress[peer]
        if pr.is_paused():
            return False
        prev_index = pr.next - 1
        prev_term = self._log.term(prev_index)
        try:
            entries = self._log.slice(
                pr.next, self._log.last_index() + 1, self._config.max_size_per_msg
            )
        except LogCompacted:
            entries = None
        if prev_term is None or entries is None:
            return self._start_snapshot(peer, pr)
        if not entries and not send_if_empty:
            return False
        pr.sent_entries(entries[-1].index if entries else None)
        self._send(
            MT.APPEND,
            peer,
            index=prev_index,
            log_term=prev_term,
            entries=tuple(entries),
            commit=self._log.committed,
        )
        return True

    def _start_snapshot(self, peer: int, pr: Progress) -> bool:
        snapshot = self._log.snapshot()
        if snapshot.meta.index == 0:
            raise InvariantViolated(f"entries for {peer} compacted but no snapshot")
        pr.become_snapshot(snapshot)
        self._send_snapshot_chunk(peer, pr)
        return True

    def _send_snapshot_chunk(self, peer: int, pr: Progress) -> None:
        snapshot = pr.pending_snapshot
        if snapshot is None:
            return
        pr.snapshot_stall = 0
        offset = pr.snapshot_offset
        data = snapshot.data[offset : offset + self._config.snapshot_chunk_size]
        done = offset + len(data) >= len(snapshot.data)
        self._send(MT.SNAPSHOT, peer, snapshot=SnapshotChunk(snapshot.meta, offset, data, done))

    def _broadcast_heartbeat(self, ctx: bytes) -> None:
        for peer, pr in self.progress.items():
            if peer != self._id:
                commit = min(pr.match, self._log.committed)
                self._send(MT.HEARTBEAT, peer, commit=commit, context=ctx)

    def _maybe_commit(self) -> bool:
        """Advance commit to what a quorum of voters holds, if that entry is of this term
        (§5.4.2: earlier terms' entries are committed only indirectly)."""
        match = {i: p.match for i, p in self.progress.items()}
        index = quorum.committed_index(self._conf.current.voters, match)
        first_in_term = self._log.term(self._log.committed) != self._term
        if not self._log.maybe_commit(index, self._term):
            return False
        self._commit_pending = True
        while self._uncommitted and self._uncommitted[0][0] <= index:
            self._uncommitted_size -= self._uncommitted.popleft()[1]
        if first_in_term:
            held, self._reads_before_commit = self._reads_before_commit, []
            for requester, ctx in held:
                self.read(requester, ctx)
        return True

    # -- reads ----------------------------------------------------------------------------

    def read(self, requester: int, ctx: bytes) -> None:
        """ReadIndex: the commit index, once a heartbeat round confirms we still lead."""
        if self._log.term(self._log.committed) != self._term:
            self._reads_before_commit.append((requester, ctx))
            return
        if self._conf.current.voters == {self._id}:
            self._answer_read(requester, self._log.committed, ctx)
            return
        if not self._read_only.add(self._log.committed, requester, ctx):
            return
        self._read_only.ack(self._id, ctx)
        self._broadcast_heartbeat(ctx)

    def _answer_read(self, requester: int, index: int, ctx: bytes) -> None:
        if requester == self._id:
            self._read_states.append(ReadState(index, ctx))
        else:
            self._send(MT.READ_INDEX_RESPONSE, requester, index=index, context=ctx)

    # -- membership -----------------------------------------------------------------------

    def conf_changed(self, conf: ConfState) -> None:
        """A membership change was applied (we are still a voter)."""
        for node in list(self.progress):
            if node not in conf.members:
                del self.progress[node]
        added = sorted(conf.members - self.progress.keys())
        for node in added:
            self._add_progress(node, self._log.last_index() + 1)
        for node in conf.members:
            self.progress[node].is_learner = node in conf.learners
        if self.transferee not in conf.voters:
            self.transferee = NONE
        self._maybe_commit()  # the quorum may have shrunk
        for node in added:
            self._send_append(node, send_if_empty=True)

    def _send(self, msg_type: MessageType, to: int, **fields: Any) -> None:
        self._outbox.append(
            Message(type=msg_type, to=to, sender=self._id, term=self._term, **fields)
        )
