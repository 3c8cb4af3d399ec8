"""Single-core helpers for message-level tests."""

from __future__ import annotations

import random
from collections.abc import Sequence

from dkron_trio.raft.core import RaftCore
from dkron_trio.raft.storage import MemoryRaftStorage
from dkron_trio.raft.types import (
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    RaftConfig,
    Ready,
    Snapshot,
    SnapshotMeta,
)

PAPER = RaftConfig(pre_vote=False, check_quorum=False)
"""The plain algorithm of the Raft paper (no pre-vote, no check-quorum)."""


def new_core(
    node_id: int = 1,
    voters: Sequence[int] = (1, 2, 3),
    *,
    terms: Sequence[int] = (),
    term: int = 0,
    vote: int = 0,
    commit: int = 0,
    config: RaftConfig = PAPER,
    seed: int = 0,
) -> tuple[RaftCore, MemoryRaftStorage]:
    """A core whose persisted log holds entries with the given terms (indexes 1..n)."""
    storage = storage_at_zero(ConfState(frozenset(voters)))
    storage.append([Entry(t, i + 1, data=b"e%d" % (i + 1)) for i, t in enumerate(terms)])
    storage.set_hard_state(HardState(term or max(terms, default=0), vote, commit))
    core = RaftCore(node_id, storage, config, random.Random(seed), applied=commit)
    return core, storage


def storage_at_zero(conf: ConfState) -> MemoryRaftStorage:
    """Storage whose membership sits in a snapshot at index 0, so tests can lay out a log
    from index 1 exactly as the paper's figures do."""
    storage = MemoryRaftStorage()
    storage.apply_snapshot(Snapshot(SnapshotMeta(0, 0, conf)))
    return storage


def drain(core: RaftCore, storage: MemoryRaftStorage | None = None) -> Ready:
    """Take the core's Ready, persist it (if storage given) and advance."""
    rd = core.ready()
    if storage is not None:
        storage.save(rd)
    core.advance(rd)
    return rd


def sent(core: RaftCore, storage: MemoryRaftStorage | None = None) -> list[Message]:
    return list(drain(core, storage).messages)


def msg(mtype: MessageType, sender: int, to: int, term: int, **fields: object) -> Message:
    return Message(type=mtype, to=to, sender=sender, term=term, **fields)  # type: ignore[arg-type]


def log_terms(core: RaftCore, first: int = 1) -> list[int]:
    return [e.term for e in core.log_entries(first, core.last_index + 1)]
