"""MemoryRaftStorage behaviour and restarting a core from what it persisted."""

from __future__ import annotations

import random

import pytest

from dkron_trio.raft.core import RaftCore
from dkron_trio.raft.errors import InvalidRequest, LogCompacted, LogUnavailable
from dkron_trio.raft.storage import MemoryRaftStorage
from dkron_trio.raft.types import (
    Compaction,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    RaftConfig,
    Role,
    Snapshot,
    SnapshotMeta,
)

from .harness import Cluster

CONF = ConfState(frozenset({1, 2, 3}))


def test_bootstrapped_storage_starts_from_the_membership_snapshot() -> None:
    storage = MemoryRaftStorage(CONF)
    hard_state, conf = storage.initial_state()
    assert conf == CONF
    assert storage.snapshot().meta.index == 1
    assert (storage.first_index(), storage.last_index()) == (2, 1)
    assert storage.term(1) == 1 and hard_state.term == 1


def test_joining_storage_is_empty_and_knows_no_members() -> None:
    storage = MemoryRaftStorage()
    assert storage.initial_state()[1] == ConfState()
    assert (storage.first_index(), storage.last_index(), storage.term(0)) == (1, 0, 0)


def test_append_replaces_the_tail_from_the_first_new_index() -> None:
    storage = MemoryRaftStorage(CONF)
    storage.append([Entry(1, 2), Entry(1, 3), Entry(1, 4)])
    storage.append([Entry(2, 3)])
    assert [(e.term, e.index) for e in storage.entries(2, 4)] == [(1, 2), (2, 3)]
    with pytest.raises(InvalidRequest, match="gap"):
        storage.append([Entry(2, 9)])
    with pytest.raises(InvalidRequest, match="contiguous"):
        storage.append([Entry(2, 4), Entry(2, 6)])


def test_entries_respect_size_limit_but_return_at_least_one() -> None:
    storage = MemoryRaftStorage(CONF)
    storage.append([Entry(1, i, data=b"x" * 10) for i in range(2, 6)])
    assert len(storage.entries(2, 6, max_size=25)) == 2
    assert len(storage.entries(2, 6, max_size=1)) == 1


def test_compaction_keeps_a_trailing_range_and_the_snapshot() -> None:
    storage = MemoryRaftStorage(CONF)
    storage.append([Entry(1, i) for i in range(2, 11)])
    snap = Snapshot(SnapshotMeta(8, 1, CONF), b"state")
    storage.set_snapshot(snap)
    storage.compact(5)
    assert storage.first_index() == 6 and storage.term(5) == 1
    assert storage.snapshot() == snap
    with pytest.raises(LogCompacted):
        storage.entries(5, 7)
    with pytest.raises(LogCompacted):
        storage.term(4)
    with pytest.raises(LogUnavailable):
        storage.term(11)
    with pytest.raises(InvalidRequest, match="beyond last index"):
        storage.compact(20)


def test_apply_snapshot_replaces_the_whole_log() -> None:
    storage = MemoryRaftStorage(CONF)
    storage.append([Entry(1, i) for i in range(2, 5)])
    storage.apply_snapshot(Snapshot(SnapshotMeta(9, 3, CONF), b"s"))
    assert (storage.first_index(), storage.last_index(), storage.term(9)) == (10, 9, 3)
    with pytest.raises(InvalidRequest, match="not newer"):
        storage.apply_snapshot(Snapshot(SnapshotMeta(9, 3, CONF)))


def test_save_persists_a_compaction() -> None:
    cluster = Cluster()
    cluster.add_nodes(1)
    cluster.elect(1)
    for i in range(5):
        cluster.core(1).propose(b"%d" % i)
        cluster.stabilize()
    node = cluster.nodes[1]
    node.core.compact(node.core.applied, b"img")
    rd = node.core.ready()
    assert isinstance(rd.compaction, Compaction)
    node.storage.save(rd)
    node.core.advance(rd)
    assert node.storage.snapshot().data == b"img"


def test_restart_replays_membership_changes_up_to_applied() -> None:
    cluster = Cluster()
    cluster.add_nodes(3)
    cluster.elect(1)
    cluster.add_nodes(1, voters=())
    cluster.core(1).propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4))
    cluster.stabilize()
    node = cluster.nodes[2]
    applied = node.core.applied
    restarted = RaftCore(2, node.storage, RaftConfig(), random.Random(1), applied=applied)
    assert restarted.conf_state.learners == {4}
    assert restarted.applied == applied
    assert not restarted.ready().committed_entries  # nothing to re-apply


def test_restart_rejects_applied_beyond_commit() -> None:
    with pytest.raises(InvalidRequest, match="beyond persisted commit"):
        RaftCore(1, MemoryRaftStorage(CONF), RaftConfig(), random.Random(0), applied=5)


def test_restarted_leader_rejoins_as_follower_with_its_term_and_vote() -> None:
    cluster = Cluster()
    cluster.add_nodes(3)
    cluster.elect(1)
    term = cluster.core(1).term
    cluster.crash(1)
    cluster.restart(1)
    core = cluster.core(1)
    assert (core.role, core.term, core.status().vote) == (Role.FOLLOWER, term, 1)
