"""Errors the Raft core raises to its caller (never for network input: bad messages are
ignored, malformed frames are the codec's CodecError)."""

from __future__ import annotations


class RaftError(Exception):
    """Base class of every error the Raft package raises on purpose."""


class NotLeader(RaftError):
    """The request needs the leader; `leader_id` is the known leader (0 if none)."""

    def __init__(self, leader_id: int) -> None:
        super().__init__(f"not the leader (leader is {leader_id or 'unknown'})")
        self.leader_id = leader_id


class ProposalDropped(RaftError):
    """The leader refused a proposal; the message says why (transfer in progress, a
    membership change still pending, too large, too much uncommitted data, ...)."""


class TransferRejected(RaftError):
    """A leadership transfer that cannot happen (unknown target, learner, self)."""


class InvalidRequest(RaftError):
    """A local call with arguments the core cannot act on (e.g. compacting past applied)."""


class LogCompacted(RaftError):
    """The requested index is below the storage's first index (covered by a snapshot)."""


class LogUnavailable(RaftError):
    """The requested index is beyond the storage's last index."""


class InvariantViolated(RaftError):
    """A Raft safety invariant would break (e.g. truncating a committed entry). This is a
    bug or corrupted storage, never a normal outcome; the simulator treats it as a failure."""
