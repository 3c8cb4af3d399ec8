"""Read-only views of a RaftCore for tests, the simulator and the shell's metrics."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from dkron_trio.raft.progress import ProgressState
from dkron_trio.raft.types import ConfState, Role


@attrs.frozen
class ProgressView:
    match: int
    next: int
    state: ProgressState
    is_learner: bool
    recent_active: bool


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
    lead_transferee: int
    progress: Mapping[int, ProgressView]
    """Followers' progress; empty unless leader."""
