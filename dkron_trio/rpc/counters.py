"""Counters of the RPC layer, shared by a node's server and peers (exported as metrics)."""

from __future__ import annotations

import collections
import enum

import attrs


class Metric(enum.Enum):
    FRAMES_IN = "frames_in"
    FRAMES_OUT = "frames_out"
    MALFORMED_DROPPED = "malformed_dropped"
    OVERSIZE_DROPPED = "oversize_dropped"
    UNKNOWN_KIND = "unknown_kind"
    QUEUE_DROPPED = "queue_dropped"
    HANDLER_ERRORS = "handler_errors"
    CONNECTIONS_ACCEPTED = "connections_accepted"
    CONNECTS = "connects"
    CONNECT_FAILURES = "connect_failures"
    CONNECTIONS_LOST = "connections_lost"
    CALL_TIMEOUTS = "call_timeouts"
    CALLS_UNAVAILABLE = "calls_unavailable"
    LATE_REPLIES = "late_replies"
    RAFT_UNKNOWN_PEER = "raft_unknown_peer"
    RAFT_UNDECODABLE = "raft_undecodable"
    RAFT_MISADDRESSED = "raft_misaddressed"
    RAFT_INBOUND_DROPPED = "raft_inbound_dropped"


@attrs.define
class Counters:
    _counts: collections.Counter[Metric] = attrs.field(factory=collections.Counter, init=False)

    def add(self, metric: Metric, n: int = 1) -> None:
        self._counts[metric] += n

    def get(self, metric: Metric) -> int:
        return self._counts[metric]

    def snapshot(self) -> dict[str, int]:
        return {m.value: self._counts[m] for m in Metric}
