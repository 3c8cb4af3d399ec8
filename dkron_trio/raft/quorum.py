"""Majority arithmetic over the voters of a configuration."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Set


class VoteResult(enum.Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def quorum_size(voters: Set[int]) -> int:
    return len(voters) // 2 + 1


def committed_index(voters: Set[int], match: Mapping[int, int]) -> int:
    """Highest index held by a majority of voters (0 without voters)."""
    if not voters:
        return 0
    ordered = sorted((match.get(v, 0) for v in voters), reverse=True)
    return ordered[quorum_size(voters) - 1]


def vote_result(voters: Set[int], votes: Mapping[int, bool]) -> VoteResult:
    granted = sum(1 for v in voters if votes.get(v) is True)
    rejected = sum(1 for v in voters if votes.get(v) is False)
    q = quorum_size(voters)
    if granted >= q:
        return VoteResult.WON
    if rejected > len(voters) - q:
        return VoteResult.LOST
    return VoteResult.PENDING


def has_quorum(voters: Set[int], members: Set[int]) -> bool:
    """Whether `members` include a majority of `voters`."""
    return bool(voters) and len(voters & members) >= quorum_size(voters)
