"""RaftCore: the pure Raft state machine (API skeleton; behaviour lands next)."""

from __future__ import annotations

from typing import Protocol

import attrs

from dkron_trio.raft.storage import RaftStorage
from dkron_trio.raft.types import (
    ConfChange,
    ConfState,
    Message,
    RaftConfig,
    Ready,
    Role,
)


class Rng(Protocol):
    """The part of `random.Random` the core uses (injected, seeded by the caller)."""

    def randrange(self, start: int, stop: int | None = ..., step: int = ...) -> int: ...


@attrs.frozen
class Status:
    """A read-only view of the core for tests, the simulator and the shell's metrics."""

    node_id: int
    role: Role
    term: int
    vote: int
    leader_id: int
    commit: int
    applied: int
    last_index: int
    conf_state: ConfState


class RaftCore:
    def __init__(
        self,
        node_id: int,
        storage: RaftStorage,
        config: RaftConfig,
        rng: Rng,
        *,
        applied: int = 0,
    ) -> None:
        raise NotImplementedError

    def tick(self) -> None:
        """Advance logical time one tick: election timeout, heartbeats, check-quorum."""
        raise NotImplementedError

    def step(self, msg: Message) -> None:
        """Feed one message received from a peer (any order, duplicates and stale ones are fine)."""
        raise NotImplementedError

    def propose(self, data: bytes) -> int:
        """Append a command (leader only); returns its log index.
        Raises NotLeader or ProposalDropped."""
        raise NotImplementedError

    def propose_conf_change(self, change: ConfChange) -> int:
        """Propose a single-server membership change (leader only, one pending at a time);
        it takes effect when applied. Returns its log index. Raises NotLeader or ProposalDropped."""
        raise NotImplementedError

    def campaign(self) -> None:
        """Start an election now (through pre-vote when enabled), as if the timeout fired."""
        raise NotImplementedError

    def transfer_leader(self, target: int) -> None:
        """Hand leadership to `target` (leader only): catch it up, then send TIMEOUT_NOW.
        Proposals are dropped until it completes or an election timeout passes."""
        raise NotImplementedError

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read point; the answer is a ReadState(index, ctx) in a later
        Ready. Followers forward to the leader; raises NotLeader if no leader is known."""
        raise NotImplementedError

    def compact(self, index: int, data: bytes) -> None:
        """The application's state machine image at `index` (<= applied): the next Ready carries
        a Compaction storing it as the snapshot and discarding the log up to
        index - compaction_keep_entries."""
        raise NotImplementedError

    def has_ready(self) -> bool:
        """Whether ready() has anything for the shell."""
        raise NotImplementedError

    def ready(self) -> Ready:
        """Collect pending work (see Ready for the persist/send/apply contract)."""
        raise NotImplementedError

    def advance(self, ready: Ready) -> None:
        """Acknowledge that `ready` was persisted, sent and applied."""
        raise NotImplementedError

    def status(self) -> Status:
        """Snapshot of the core's state."""
        raise NotImplementedError
