"""RaftCore: the pure Raft state machine, modelled on etcd-raft.

The core does no IO and keeps no clock: the shell calls `tick()` on a timer, feeds
received messages to `step()`, and drains `ready()` (persist, send, apply) before calling
`advance()`. Randomness (election timeouts) comes from the injected rng, so a seeded
cluster replays bit for bit.

Beyond the Raft paper it implements pre-vote, check-quorum with leader stickiness,
per-follower flow control, chunked InstallSnapshot, single-server membership changes with
learners, leadership transfer and ReadIndex. Leaders persist before they send (the Ready
contract), and count their own copy only once it is persisted.

The core keeps role, term, vote and elections; leader-only state lives in leader.py, the
follower side of replication in follower.py, and what waits for the shell in handoff.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import attrs

from dkron_trio.raft import quorum
from dkron_trio.raft.codec import encode_conf_change
from dkron_trio.raft.errors import (
    InvalidRequest,
    InvariantViolated,
    NotLeader,
    ProposalDropped,
)
from dkron_trio.raft.follower import FollowerLog
from dkron_trio.raft.handoff import Handoff
from dkron_trio.raft.leader import Leadership
from dkron_trio.raft.log import RaftLog
from dkron_trio.raft.membership import ConfHistory, check_conf_change
from dkron_trio.raft.status import ProgressView, Status
from dkron_trio.raft.storage import RaftStorage
from dkron_trio.raft.types import (
    NONE,
    Compaction,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    RaftConfig,
    ReadState,
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
    SoftState,
)

MT = MessageType


class Rng(Protocol):
    """The part of `random.Random` the core uses (injected, seeded by the caller)."""

    def randrange(self, start: int, stop: int | None = ..., step: int = ...) -> int: ...


@attrs.define(init=False)
class RaftCore:
    _id: int
    _config: RaftConfig
    _rng: Rng
    _log: RaftLog
    _term: int
    _vote: int
    _lead: int
    _role: Role
    _conf: ConfHistory
    _leader: Leadership | None
    """Set exactly while this node leads (role LEADER)."""
    _votes: dict[int, bool]
    _election_elapsed: int
    _randomized_timeout: int
    _follower_log: FollowerLog
    _handoff: Handoff

    def __init__(
        self,
        node_id: int,
        storage: RaftStorage,
        config: RaftConfig,
        rng: Rng,
        *,
        applied: int = 0,
    ) -> None:
        """Open the core on persisted state. `applied` is the index the application's
        state machine already reflects (it replays from there); membership changes up to
        it are replayed from the log."""
        if node_id <= NONE:
            raise InvalidRequest(f"node_id must be >= 1, got {node_id}")
        hard_state, conf_state = storage.initial_state()
        snapshot_meta = storage.snapshot().meta
        committed = max(hard_state.commit, snapshot_meta.index)
        applied = max(applied, snapshot_meta.index)
        if applied > committed:
            raise InvalidRequest(f"applied {applied} beyond persisted commit {committed}")
        if committed > storage.last_index():
            raise InvariantViolated(
                f"persisted commit {committed} beyond last index {storage.last_index()}"
            )
        self._id = node_id
        self._config = config
        self._rng = rng
        self._log = RaftLog.open(storage, committed, applied)
        self._term = hard_state.term
        self._vote = hard_state.vote
        self._lead = NONE
        self._role = Role.FOLLOWER
        self._conf = ConfHistory.starting_at(snapshot_meta.index, conf_state)
        if applied > snapshot_meta.index:
            for entry in self._log.slice(snapshot_meta.index + 1, applied + 1):
                self._conf.apply_entry(entry)
        self._leader = None
        self._votes = {}
        self._election_elapsed = 0
        self._randomized_timeout = config.election_ticks
        self._follower_log = FollowerLog(self._log)
        self._handoff = Handoff.opened(self._log, config.max_committed_size_per_ready, hard_state)
        self._become_follower(self._term, NONE)

    # -- accessors ----------------------------------------------------------------------

    @property
    def node_id(self) -> int:
        return self._id

    @property
    def role(self) -> Role:
        return self._role

    @property
    def term(self) -> int:
        return self._term

    @property
    def leader_id(self) -> int:
        return self._lead

    @property
    def commit(self) -> int:
        return self._log.committed

    @property
    def applied(self) -> int:
        return self._log.applied

    @property
    def conf_state(self) -> ConfState:
        """Membership as of the applied index."""
        return self._conf.current

    @property
    def last_index(self) -> int:
        return self._log.last_index()

    def log_term(self, index: int) -> int | None:
        """Term of the entry at `index` in this node's log (None if compacted or absent)."""
        return self._log.term(index)

    def log_entries(self, lo: int, hi: int) -> list[Entry]:
        """Entries [lo, hi) of this node's log, persisted or not (LogCompacted below the
        first index)."""
        return self._log.slice(lo, hi)

    def status(self) -> Status:
        """Snapshot of the core's state."""
        progress: dict[int, ProgressView] = {}
        if self._leader is not None:
            progress = {
                i: ProgressView(p.match, p.next, p.state, p.is_learner, p.recent_active)
                for i, p in self._leader.progress.items()
            }
        return Status(
            node_id=self._id,
            role=self._role,
            term=self._term,
            vote=self._vote,
            leader_id=self._lead,
            commit=self._log.committed,
            applied=self._log.applied,
            last_index=self._log.last_index(),
            conf_state=self._conf.current,
            lead_transferee=self._leader.transferee if self._leader is not None else NONE,
            progress=progress,
        )

    # -- inputs -------------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time one tick: election timeout, heartbeats, check-quorum."""
        self._election_elapsed += 1
        if self._leader is None:
            if self._promotable() and self._election_elapsed >= self._randomized_timeout:
                self._election_elapsed = 0
                self._hup(transfer=False)
            return
        timed_out = self._election_elapsed >= self._config.election_ticks
        if timed_out:
            self._election_elapsed = 0
        if not self._leader.tick(timed_out):
            self._become_follower(self._term, NONE)

    def campaign(self) -> None:
        """Start an election now (through pre-vote when enabled), as if the timeout fired.
        A no-op on a leader, a learner or a node outside the configuration."""
        self._hup(transfer=False)

    def report_down(self, node_id: int) -> None:
        """The transport found `node_id`'s process gone (its connection closed and a new
        one was refused). A follower of that leader forgets it, so that its lease no longer
        refuses the others' pre-votes, and campaigns after 1 + its rank among the other
        voters ticks instead of a whole randomized timeout: a crashed leader is replaced in
        a few ticks, and two followers rarely campaign in the same one. A wrong report
        costs at most an election, never safety: a live leader's next heartbeat makes it
        the leader again, and followers that still hear it refuse the pre-vote."""
        if self._role is not Role.FOLLOWER or node_id == NONE or self._lead != node_id:
            return
        self._lead = NONE
        others = sorted(self._conf.current.voters - {node_id})
        if self._id in others:
            wait = 1 + others.index(self._id)
            self._election_elapsed = max(self._election_elapsed, self._randomized_timeout - wait)

    def propose(self, data: bytes) -> int:
        """Append a command (leader only); returns its log index.
        Raises NotLeader or ProposalDropped."""
        if not data:
            raise ProposalDropped("empty proposal (empty entries are reserved for barriers)")
        if len(data) > self._config.max_proposal_size:
            raise ProposalDropped(
                f"proposal of {len(data)} bytes exceeds max_proposal_size "
                f"{self._config.max_proposal_size}"
            )
        return self._leading(len(data)).append(EntryType.NORMAL, data)

    def propose_conf_change(self, change: ConfChange) -> int:
        """Propose a single-server membership change (leader only, one pending at a time);
        it takes effect when applied. Returns its log index. Raises NotLeader or
        ProposalDropped."""
        data = encode_conf_change(change)
        leader = self._leading(len(data))
        if leader.pending_conf_index > self._log.applied:
            raise ProposalDropped(
                f"a membership change (index {leader.pending_conf_index}) is not applied yet"
            )
        check_conf_change(self._conf.current, change)
        index = leader.append(EntryType.CONF_CHANGE, data)
        leader.pending_conf_index = index
        return index

    def transfer_leader(self, target: int) -> None:
        """Hand leadership to `target` (leader only): catch it up, then send TIMEOUT_NOW.
        Proposals are dropped until it completes or an election timeout passes."""
        if self._leader is None:
            raise NotLeader(self._lead)
        if self._leader.transferee != target:
            self._election_elapsed = 0  # the transfer gets one election timeout
        self._leader.transfer(target)

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read point; the answer is a ReadState(index, ctx) in a
        later Ready (none if leadership is lost meanwhile: the caller times out). `ctx`
        must be unique among pending requests. Followers forward to the leader; raises
        NotLeader if no leader is known."""
        if self._leader is not None:
            self._leader.read(self._id, ctx)
        elif self._lead == NONE:
            raise NotLeader(NONE)
        else:
            self._send(MT.READ_INDEX, self._lead, context=ctx)

    def compact(self, index: int, data: bytes) -> None:
        """The application's state machine image at `index` (<= applied): the next Ready
        carries a Compaction storing it as the snapshot and discarding the log up to
        index - compaction_keep_entries."""
        if index > self._log.applied:
            raise InvalidRequest(f"snapshot index {index} beyond applied {self._log.applied}")
        pending = self._handoff.compaction
        current = (
            pending.snapshot.meta.index if pending is not None else self._log.snapshot().meta.index
        )
        if index <= current:
            raise InvalidRequest(f"snapshot index {index} not beyond current snapshot {current}")
        term = self._log.term(index)
        if term is None:
            raise InvalidRequest(f"term of index {index} unknown")
        first = self._log.first_index()
        compact_index = max(first - 1, index - self._config.compaction_keep_entries)
        meta = SnapshotMeta(index, term, self._conf.at(index))
        self._handoff.compaction = Compaction(Snapshot(meta, data), compact_index)
        self._conf.forget_before(index)

    def step(self, msg: Message) -> None:
        """Feed one message received from a peer (any order; duplicates and stale ones are
        fine)."""
        if msg.to != self._id or msg.sender in (self._id, NONE):
            return
        if msg.term > self._term:
            if msg.type in (MT.VOTE, MT.PRE_VOTE) and not msg.leader_transfer:
                in_lease = (
                    self._config.check_quorum
                    and self._lead != NONE
                    and self._election_elapsed < self._config.election_ticks
                )
                if in_lease:
                    return
            if msg.type is MT.PRE_VOTE or (msg.type is MT.PRE_VOTE_RESPONSE and not msg.reject):
                pass
            elif msg.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
                self._become_follower(msg.term, msg.sender)
            else:
                self._become_follower(msg.term, NONE)
        elif msg.term < self._term:
            if msg.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
                # §5.1: reject with our term, so a deposed leader learns it and steps down.
                self._send(MT.APPEND_RESPONSE, msg.sender)
            elif msg.type is MT.PRE_VOTE:
                self._send(MT.PRE_VOTE_RESPONSE, msg.sender, reject=True)
            return
        if msg.type in (MT.VOTE, MT.PRE_VOTE):
            self._handle_vote_request(msg)
        elif self._leader is not None:
            self._leader.step(msg)
        elif self._role is Role.FOLLOWER:
            self._step_follower(msg)
        else:
            self._step_candidate(msg)

    # -- Ready ----------------------------------------------------------------------------

    def has_ready(self) -> bool:
        """Whether ready() has anything for the shell."""
        if self._leader is not None and self._leader.has_pending():
            return True
        return self._handoff.has_ready(self._hard_state(), self._soft_state())

    def ready(self) -> Ready:
        """Collect pending work (see Ready for the persist/send/apply contract)."""
        if self._leader is not None:
            self._leader.flush()
        return self._handoff.ready(self._hard_state(), self._soft_state())

    def advance(self, ready: Ready) -> None:
        """Acknowledge that `ready` was persisted, sent and applied (a shell that applies
        each Ready's committed entries before taking the next Ready)."""
        self.advance_persisted(ready)
        self.advance_applied(ready.committed_entries)

    def advance_persisted(self, ready: Ready) -> None:
        """Acknowledge that `ready` was persisted and sent, and its snapshot (if any)
        restored; its committed entries are acknowledged by `advance_applied` once applied
        (a shell may apply them while it persists and sends later Readies)."""
        self._handoff.persisted(ready)
        if self._leader is not None:
            self._leader.persisted()

    def advance_applied(self, entries: Sequence[Entry]) -> None:
        """Acknowledge that committed entries handed out by `ready` were applied, in order;
        membership changes among them take effect now."""
        for entry in entries:
            if entry.type is EntryType.CONF_CHANGE:
                self._log.applied_to(entry.index)
                self._apply_conf_entry(entry)
        if entries:
            self._log.applied_to(entries[-1].index)

    def take_heartbeats(self) -> list[Message]:
        """Take the heartbeats and heartbeat replies waiting for the next Ready, for the
        shell to send while it is still applying the current one. They carry only the term,
        which must be durable (nothing is taken while a new term or vote waits to be
        persisted), and a commit index, which never runs ahead of what a quorum persisted.
        Without them a leader applying a long batch loses its followers, and a follower
        applying one makes its leader step down."""
        return self._handoff.take_heartbeats(self._term, self._vote)

    # -- elections ------------------------------------------------------------------------

    def _promotable(self) -> bool:
        return self._id in self._conf.current.voters and not self._log.has_pending_snapshot()

    def _hup(self, *, transfer: bool) -> None:
        if self._role is Role.LEADER or not self._promotable():
            return
        if self._has_unapplied_conf_change():
            return
        if self._config.pre_vote and not transfer:
            self._campaign(pre=True, transfer=False)
        else:
            self._campaign(pre=False, transfer=transfer)

    def _has_unapplied_conf_change(self) -> bool:
        lo = max(self._log.applied + 1, self._log.first_index())
        hi = self._log.committed + 1
        return any(e.type is EntryType.CONF_CHANGE for e in self._log.slice(lo, hi))

    def _campaign(self, *, pre: bool, transfer: bool) -> None:
        if pre:
            self._become_pre_candidate()
            vote_type, term = MT.PRE_VOTE, self._term + 1
        else:
            self._become_candidate()
            vote_type, term = MT.VOTE, self._term
        self._votes[self._id] = True
        if self._tally() is quorum.VoteResult.WON:
            self._won_election(pre)
            return
        last_index, last_term = self._log.last_index(), self._log.last_term()
        for voter in sorted(self._conf.current.voters - {self._id}):
            self._send(
                vote_type,
                voter,
                term=term,
                index=last_index,
                log_term=last_term,
                leader_transfer=transfer,
            )

    def _won_election(self, pre: bool) -> None:
        if pre:
            self._campaign(pre=False, transfer=False)
        else:
            self._become_leader()

    def _tally(self) -> quorum.VoteResult:
        return quorum.vote_result(self._conf.current.voters, self._votes)

    def _handle_vote_request(self, msg: Message) -> None:
        """§5.2/§5.4.1: one vote per term, only for a log at least as up to date."""
        pre = msg.type is MT.PRE_VOTE
        can_vote = (
            self._vote == msg.sender
            or (self._vote == NONE and self._lead == NONE)
            or (pre and msg.term > self._term)
        )
        response = MT.PRE_VOTE_RESPONSE if pre else MT.VOTE_RESPONSE
        if can_vote and self._log.is_up_to_date(msg.index, msg.log_term):
            self._send(response, msg.sender, term=msg.term)
            if not pre:
                self._election_elapsed = 0
                self._vote = msg.sender
        else:
            self._send(response, msg.sender, reject=True)

    def _reset(self, term: int) -> None:
        if term != self._term:
            self._term = term
            self._vote = NONE
        self._lead = NONE
        self._election_elapsed = 0
        self._randomized_timeout = self._config.election_ticks + self._rng.randrange(
            self._config.election_ticks
        )
        self._votes = {}
        self._leader = None

    def _become_follower(self, term: int, lead: int) -> None:
        self._reset(term)
        self._lead = lead
        self._role = Role.FOLLOWER

    def _become_pre_candidate(self) -> None:
        self._votes = {}
        self._lead = NONE
        self._role = Role.PRE_CANDIDATE

    def _become_candidate(self) -> None:
        self._reset(self._term + 1)
        self._vote = self._id
        self._role = Role.CANDIDATE

    def _become_leader(self) -> None:
        self._reset(self._term)
        self._lead = self._id
        self._role = Role.LEADER
        self._leader = Leadership(
            self._id,
            self._term,
            self._config,
            self._log,
            self._conf,
            self._handoff.outbox,
            self._handoff.read_states,
        )
        self._leader.start()

    # -- message handling by role ---------------------------------------------------------

    def _step_follower(self, msg: Message) -> None:
        if msg.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
            self._election_elapsed = 0
            self._lead = msg.sender
            self._handle_from_leader(msg)
        elif msg.type is MT.TIMEOUT_NOW:
            self._hup(transfer=True)
        elif msg.type is MT.READ_INDEX_RESPONSE:
            self._handoff.read_states.append(ReadState(msg.index, msg.context))

    def _step_candidate(self, msg: Message) -> None:
        if msg.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
            self._become_follower(msg.term, msg.sender)
            self._handle_from_leader(msg)
            return
        pre = self._role is Role.PRE_CANDIDATE
        expected = MT.PRE_VOTE_RESPONSE if pre else MT.VOTE_RESPONSE
        if msg.type is not expected:
            return
        self._votes.setdefault(msg.sender, not msg.reject)
        result = self._tally()
        if result is quorum.VoteResult.WON:
            self._won_election(pre)
        elif result is quorum.VoteResult.LOST:
            self._become_follower(self._term, NONE)

    def _handle_from_leader(self, msg: Message) -> None:
        reply = self._follower_log.receive(msg)
        if reply is None:
            return
        if reply.installed is not None:
            self._conf = ConfHistory.starting_at(reply.installed.index, reply.installed.conf_state)
        self._handoff.outbox.append(reply.message)

    # -- membership -----------------------------------------------------------------------

    def _apply_conf_entry(self, entry: Entry) -> None:
        conf = self._conf.apply_entry(entry)
        if conf is None or self._leader is None:
            return
        if self._id not in conf.voters:
            self._become_follower(self._term, NONE)
            return
        self._leader.conf_changed(conf)

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, msg_type: MessageType, to: int, **fields: Any) -> None:
        fields.setdefault("term", self._term)
        self._handoff.outbox.append(Message(type=msg_type, to=to, sender=self._id, **fields))

    def _leading(self, size: int) -> Leadership:
        """The leadership a proposal of `size` bytes goes to (NotLeader/ProposalDropped)."""
        if self._leader is None:
            raise NotLeader(self._lead)
        self._leader.check_can_propose(size)
        return self._leader

    def _hard_state(self) -> HardState:
        return HardState(self._term, self._vote, self._log.committed)

    def _soft_state(self) -> SoftState:
        return SoftState(self._lead, self._role)
