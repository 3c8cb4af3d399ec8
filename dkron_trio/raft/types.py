"""Values exchanged with the Raft core: log entries, messages, durable state, Ready, config.

Everything here is a frozen value so that a Ready handed to the shell (or to the simulator)
cannot be changed behind the core's back. `RaftConfig` is the one place for Raft's defaults
and their validation.
"""

from __future__ import annotations

import enum

import attrs

NONE = 0
"""Node id meaning "no node": no vote cast, no leader known. Real node ids are >= 1."""


class EntryType(enum.Enum):
    """What an entry's data holds."""

    NORMAL = 0
    """Application command (bytes). Empty data is the no-op barrier a new leader appends."""
    CONF_CHANGE = 1
    """An encoded `ConfChange` (see codec.encode_conf_change)."""


class MessageType(enum.Enum):
    """Every message Raft peers exchange (no local-only pseudo messages)."""

    APPEND = 1
    APPEND_RESPONSE = 2
    VOTE = 3
    VOTE_RESPONSE = 4
    PRE_VOTE = 5
    PRE_VOTE_RESPONSE = 6
    HEARTBEAT = 7
    HEARTBEAT_RESPONSE = 8
    SNAPSHOT = 9
    """One chunk of InstallSnapshot (`Message.snapshot`)."""
    SNAPSHOT_RESPONSE = 10
    """Chunk acknowledgement: `index` = next byte offset the follower expects."""
    TIMEOUT_NOW = 11
    """Leadership transfer: the target campaigns at once."""
    READ_INDEX = 12
    """A follower forwards a ReadIndex request (`context`) to the leader."""
    READ_INDEX_RESPONSE = 13
    """The leader answers a forwarded ReadIndex: `index` is the read index."""


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class ConfChangeType(enum.Enum):
    ADD_NODE = 0
    """Add a voter, or promote a learner to voter."""
    ADD_LEARNER = 1
    """Add a non-voting member (catches up without affecting quorum)."""
    REMOVE_NODE = 2
    """Remove a voter or a learner."""


def _id_set(ids: frozenset[int] | set[int] | list[int] | tuple[int, ...]) -> frozenset[int]:
    return frozenset(ids)


@attrs.frozen
class Entry:
    term: int
    index: int
    type: EntryType = EntryType.NORMAL
    data: bytes = b""

    @property
    def size(self) -> int:
        """Payload size used for batching and flow-control limits."""
        return len(self.data)


@attrs.frozen
class ConfState:
    """Cluster membership. Voters form quorums; learners only receive the log."""

    voters: frozenset[int] = attrs.field(default=frozenset(), converter=_id_set)
    learners: frozenset[int] = attrs.field(default=frozenset(), converter=_id_set)

    def __attrs_post_init__(self) -> None:
        if self.voters & self.learners:
            raise ValueError(f"nodes both voter and learner: {sorted(self.voters & self.learners)}")
        if any(i <= NONE for i in self.voters | self.learners):
            raise ValueError("node ids must be >= 1")

    @property
    def members(self) -> frozenset[int]:
        return self.voters | self.learners


@attrs.frozen
class ConfChange:
    """A single-server membership change, proposed with RaftCore.propose_conf_change."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""
    """Opaque to Raft (e.g. the new member's address); delivered back when applied."""


@attrs.frozen
class HardState:
    """What must be durable before any message that depends on it is sent."""

    term: int = 0
    vote: int = NONE
    commit: int = 0


@attrs.frozen
class SoftState:
    """Volatile state reported to the shell when it changes (leadership events)."""

    leader_id: int
    role: Role


@attrs.frozen
class SnapshotMeta:
    index: int
    term: int
    conf_state: ConfState


@attrs.frozen
class Snapshot:
    """State machine image at `meta.index`; `data` is opaque to Raft."""

    meta: SnapshotMeta
    data: bytes = b""


EMPTY_SNAPSHOT = Snapshot(SnapshotMeta(0, 0, ConfState()))


@attrs.frozen
class SnapshotChunk:
    """One piece of an InstallSnapshot transfer; `done` marks the last piece."""

    meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool


@attrs.frozen
class Message:
    """A Raft message. Field meaning follows etcd-raft:

    - APPEND: `index`/`log_term` = the entry preceding `entries`; `commit` = leader commit.
    - APPEND_RESPONSE: `index` = highest index known to match (accept) or the rejected
      probe index (reject, with `reject_hint`/`log_term` pointing at a likely match).
    - (PRE_)VOTE: `index`/`log_term` = candidate's last entry; `leader_transfer` set when
      campaigning because of TIMEOUT_NOW (bypasses leader stickiness).
    - HEARTBEAT(_RESPONSE): `commit` = what the follower may commit; `context` carries a
      ReadIndex request being confirmed.
    """

    type: MessageType
    to: int
    sender: int
    term: int
    log_term: int = 0
    index: int = 0
    commit: int = 0
    entries: tuple[Entry, ...] = ()
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""
    leader_transfer: bool = False
    snapshot: SnapshotChunk | None = None


@attrs.frozen
class ReadState:
    """A ReadIndex answer: once `applied >= index`, a read for `ctx` is linearizable."""

    index: int
    ctx: bytes


@attrs.frozen
class Compaction:
    """Local log compaction the shell must persist: store `snapshot` as the latest snapshot,
    then discard entries up to and including `compact_index` (<= snapshot.meta.index; the
    entries after it are kept so that slightly lagging followers need no snapshot)."""

    snapshot: Snapshot
    compact_index: int


@attrs.frozen
class Ready:
    """Work for the shell. Contract, in this order:

    1. Persist: `snapshot` (replaces the whole log; data b"" is the empty initial state
       of a bootstrapped cluster), then `entries` (an entry at index i
       replaces any stored entry >= i), then `hard_state`, then `compaction`; fsync if
       `must_sync`.
    2. Send `messages` (only after step 1: they may depend on the durable state).
    3. Restore the state machine from `snapshot` if set, then apply `committed_entries`
       in order (they may include entries of this very Ready: step 1 made them durable;
       entries with empty data are no-op barriers); answer `read_states` once applied
       reaches their index.
    4. Call `RaftCore.advance(ready)`.

    Leaders too persist before they send: no APPEND leaves before the entries it carries
    are durable on the leader, and the leader counts its own copy towards a quorum only
    after `advance`. `tick`/`step`/`propose` may be called between `ready()` and
    `advance()`; their effects appear in the next Ready.
    """

    hard_state: HardState | None = None
    soft_state: SoftState | None = None
    entries: tuple[Entry, ...] = ()
    snapshot: Snapshot | None = None
    compaction: Compaction | None = None
    messages: tuple[Message, ...] = ()
    committed_entries: tuple[Entry, ...] = ()
    read_states: tuple[ReadState, ...] = ()
    must_sync: bool = False


class ConfigError(ValueError):
    """An invalid RaftConfig; the message names the field."""


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}: must be an integer, got {value!r}")
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {value}")


@attrs.frozen
class RaftConfig:
    """Raft tuning; all defaults live here. Times are in ticks (the shell's tick is 100 ms,
    scaled by `raft-multiplier`)."""

    heartbeat_ticks: int = 1
    election_ticks: int = 10
    """Base election timeout; each term a node waits a random value in [e, 2e) ticks."""
    pre_vote: bool = True
    check_quorum: bool = True
    """Leader steps down without a live quorum; followers ignore votes while a leader is
    heard (leader stickiness)."""
    max_size_per_msg: int = 1 << 20
    """Bytes of entry data per APPEND (at least one entry is always sent)."""
    max_inflight_msgs: int = 256
    """APPENDs sent to a replicating follower before an acknowledgement is needed."""
    max_committed_size_per_ready: int = 8 << 20
    max_uncommitted_size: int = 64 << 20
    """Bytes of proposed-but-uncommitted entries after which proposals are dropped."""
    max_proposal_size: int = 1 << 20
    snapshot_chunk_size: int = 512 << 10
    compaction_keep_entries: int = 1000
    """Entries kept below a local snapshot's index when compacting (see RaftCore.compact)."""

    def __attrs_post_init__(self) -> None:
        for name in (
            "heartbeat_ticks",
            "election_ticks",
            "max_size_per_msg",
            "max_inflight_msgs",
            "max_committed_size_per_ready",
            "max_uncommitted_size",
            "max_proposal_size",
            "snapshot_chunk_size",
        ):
            _positive(name, getattr(self, name))
        keep = self.compaction_keep_entries
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise ConfigError(f"compaction_keep_entries: must be an integer >= 0, got {keep!r}")
        for name in ("pre_vote", "check_quorum"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}: must be a boolean")
        if self.heartbeat_ticks >= self.election_ticks:
            raise ConfigError(
                f"heartbeat_ticks: must be less than election_ticks "
                f"({self.heartbeat_ticks} >= {self.election_ticks})"
            )
        if self.max_proposal_size > self.max_uncommitted_size:
            raise ConfigError("max_proposal_size: must not exceed max_uncommitted_size")
        if self.snapshot_chunk_size > MAX_CHUNK_SIZE:
            raise ConfigError(f"snapshot_chunk_size: must be at most {MAX_CHUNK_SIZE}")
        if self.max_size_per_msg > MAX_CHUNK_SIZE:
            raise ConfigError(f"max_size_per_msg: must be at most {MAX_CHUNK_SIZE}")
        if self.max_proposal_size > MAX_CHUNK_SIZE:
            raise ConfigError(f"max_proposal_size: must be at most {MAX_CHUNK_SIZE}")


MAX_CHUNK_SIZE = 16 << 20
"""Largest payload one message may carry; the codec's frame limit leaves room above it."""
