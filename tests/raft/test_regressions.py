"""Regression scenarios, each named for the class of bug it guards against."""

from __future__ import annotations

import random

import pytest

from dkron_trio.raft.core import RaftCore
from dkron_trio.raft.errors import InvalidRequest
from dkron_trio.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    MessageType,
    RaftConfig,
    Role,
    SnapshotChunk,
    SnapshotMeta,
)

from .harness import Cluster
from .helpers import PAPER, drain, msg, new_core, sent

MT = MessageType


def test_figure8_old_term_entry_is_not_committed_by_counting_replicas() -> None:
    """Raft paper Figure 8: an entry from an old term that reaches a majority may still be
    overwritten, so a leader must not commit it by counting replicas."""
    cluster = Cluster()
    cluster.add_nodes(5, RaftConfig(pre_vote=False, check_quorum=False, max_size_per_msg=1))
    cluster.elect(1)  # S1 leads term t; its no-op is committed everywhere
    t, base = cluster.core(1).term, cluster.core(1).commit
    # (a) S1 gets "aa" (index i = base + 1, term t) onto S2 only.
    cluster.partition([1, 2], [3, 4, 5])
    i = cluster.core(1).propose(b"aa")
    cluster.stabilize()
    assert cluster.core(1).commit == base
    # (b) S1 crashes; S5 wins term t+1 with S3, S4 and writes its no-op at index i only
    # to its own log.
    cluster.crash(1)
    cluster.partition([3, 4, 5], [2])
    cluster.core(5).campaign()
    while cluster.core(5).role is not Role.LEADER:
        cluster.step_round([3, 4, 5])
    cluster.isolate(5)
    cluster.handle_ready(5)
    cluster.crash(5)
    assert cluster.core(5).log_term(i) == t + 1
    # (c) S1 restarts and wins term t+2 with S2, S3; it copies (i, t) to S3, so index i is
    # on S1, S2, S3: a majority. It must not count that as committed.
    cluster.restart(1)
    cluster.partition([1, 2, 3], [4])
    cluster.queue.clear()
    for _ in range(2):  # term t+1 fails (S3 voted for S5 in it), term t+2 wins
        if cluster.core(1).role is not Role.LEADER:
            cluster.core(1).campaign()
        while cluster.core(1).role is not Role.LEADER and cluster.step_round([1, 2, 3]):
            pass
    assert cluster.core(1).role is Role.LEADER and cluster.core(1).term == t + 2
    while cluster.core(1).status().progress[3].match < i:
        cluster.step_round([1, 2, 3])
    assert [cluster.core(n).log_term(i) for n in (1, 2, 3)] == [t, t, t]
    assert cluster.core(1).commit < i, "old-term entry committed by counting replicas"
    # (d) S1 crashes before its own-term entry reaches S3; S5 wins term t+3 and
    # overwrites index i everywhere, as it may, since i was never committed.
    cluster.crash(1)
    cluster.queue.clear()
    cluster.restart(5)
    cluster.partition([2, 3, 4, 5])
    for _ in range(3):
        if cluster.core(5).role is not Role.LEADER:
            cluster.core(5).campaign()
            cluster.stabilize([2, 3, 4, 5])
    assert cluster.core(5).role is Role.LEADER
    cluster.stabilize([2, 3, 4, 5])
    assert all(cluster.core(n).log_term(i) == t + 1 for n in (2, 3, 4, 5))
    assert all(b"aa" not in cluster.nodes[n].applied for n in cluster.nodes)


def test_stale_duplicated_append_does_not_truncate_follower_log() -> None:
    core, storage = new_core(node_id=2, term=1)
    full = (Entry(1, 1, data=b"a"), Entry(1, 2, data=b"b"), Entry(1, 3, data=b"c"))
    core.step(msg(MT.APPEND, 1, 2, 1, log_term=0, index=0, entries=full, commit=1))
    sent(core, storage)
    # Older, shorter APPENDs arrive late (reordered) and again (duplicated).
    for _ in range(2):
        core.step(msg(MT.APPEND, 1, 2, 1, log_term=0, index=0, entries=full[:1], commit=1))
        core.step(msg(MT.APPEND, 1, 2, 1, log_term=1, index=1, entries=full[1:2], commit=1))
    out = sent(core, storage)
    assert core.last_index == 3
    assert [e.data for e in storage.entries(1, 4)] == [b"a", b"b", b"c"]
    # Each reply vouches only for what that message carried, never more.
    assert [m.index for m in out] == [1, 2, 1, 2]


def test_append_below_commit_is_acknowledged_not_applied() -> None:
    core, storage = new_core(node_id=2, terms=[1, 1, 1], term=1, commit=3)
    core.step(msg(MT.APPEND, 1, 2, 1, log_term=1, index=1, entries=(Entry(1, 2),)))
    out = sent(core, storage)
    assert out[0].index == 3 and not out[0].reject
    assert core.last_index == 3


def test_term_and_vote_are_durable_before_the_vote_reply_is_sent() -> None:
    core, storage = new_core(node_id=3, term=1)
    core.step(msg(MT.VOTE, 1, 3, 2))
    rd = core.ready()
    assert [m.type for m in rd.messages] == [MT.VOTE_RESPONSE]
    assert rd.hard_state is not None and (rd.hard_state.term, rd.hard_state.vote) == (2, 1)
    assert rd.must_sync, "the vote must be fsynced before its reply leaves"
    # Crash before persisting: the reply was never sent, so forgetting the vote is safe...
    restarted = RaftCore(3, storage, PAPER, random.Random(0))
    restarted.step(msg(MT.VOTE, 2, 3, 2))
    assert not drain(restarted).messages[0].reject
    # ...but once persisted, a restart must remember it and refuse another candidate.
    storage.save(rd)
    again = RaftCore(3, storage, PAPER, random.Random(0))
    again.step(msg(MT.VOTE, 2, 3, 2))
    assert drain(again).messages[0].reject


def test_leader_counts_its_own_entry_only_once_persisted() -> None:
    core, storage = new_core(voters=(1,))
    core.campaign()
    drain(core, storage)
    index = core.propose(b"x")
    rd = core.ready()
    assert [e.index for e in rd.entries] == [index]
    assert index not in [e.index for e in rd.committed_entries]
    assert core.commit < index
    storage.save(rd)
    core.advance(rd)
    assert core.commit == index


def test_snapshot_index_beyond_compacted_log_is_sent_and_installed() -> None:
    cluster = Cluster()
    cluster.add_nodes(3, RaftConfig(compaction_keep_entries=2, snapshot_chunk_size=4))
    cluster.elect(1)
    cluster.crash(3)
    for i in range(10):
        cluster.core(1).propose(b"v%d" % i)
        cluster.stabilize([1, 2])
    leader = cluster.nodes[1]
    leader.core.compact(leader.core.applied, b"\n".join(leader.applied))
    cluster.stabilize([1, 2])
    first = leader.storage.first_index()
    assert first > 2 and leader.storage.snapshot().meta.index == leader.core.applied
    # Node 3 is behind the leader's first index: only a snapshot can catch it up.
    cluster.restart(3)
    cluster.queue.clear()
    for _ in range(5):
        cluster.tick(1)
        cluster.stabilize()
    chunks = [line for line in cluster.log if "->3 SNAPSHOT " in line and "receiving" not in line]
    assert len(chunks) > 1 and "Done" in chunks[-1]  # sent in several chunks
    assert cluster.nodes[3].applied == leader.applied
    assert cluster.nodes[3].storage.snapshot().meta.index == leader.storage.snapshot().meta.index
    cluster.core(1).propose(b"after")
    cluster.stabilize()
    assert cluster.nodes[3].applied[-1] == b"after"


def test_snapshot_replaces_a_follower_log_with_stale_conflicting_tail() -> None:
    core, storage = new_core(node_id=2, terms=[1, 1, 2, 2, 2, 2], term=2, commit=2)
    meta = SnapshotMeta(4, 3, ConfState(frozenset({1, 2, 3})))
    chunk = SnapshotChunk(meta, 0, b"state", True)
    core.step(msg(MT.SNAPSHOT, 1, 2, 3, snapshot=chunk))
    rd = drain(core, storage)
    assert rd.snapshot is not None and rd.snapshot.data == b"state"
    assert core.last_index == 4 and core.commit == 4 and core.applied == 4
    assert storage.first_index() == 5
    assert [m.index for m in rd.messages if m.type is MT.APPEND_RESPONSE] == [4]


def test_compaction_beyond_applied_index_is_refused() -> None:
    core, _ = new_core(terms=[1, 1, 1], term=1, commit=2)
    with pytest.raises(InvalidRequest, match="beyond applied"):
        core.compact(3, b"")


def test_removed_node_does_not_disrupt_the_cluster() -> None:
    cluster = Cluster()
    cluster.add_nodes(3)
    cluster.elect(1)
    # Node 3 is cut off before it learns it was removed.
    cluster.isolate(3)
    cluster.core(1).propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, 3))
    cluster.stabilize()
    assert cluster.core(1).conf_state.voters == {1, 2}
    term = cluster.core(1).term
    # It times out again and again and comes back campaigning.
    for _ in range(50):
        cluster.tick(3)
        cluster.stabilize([3])
    cluster.heal()
    for _ in range(60):
        cluster.tick_all()
        cluster.stabilize()
    assert cluster.core(1).role is Role.LEADER
    assert cluster.core(1).term == term
    cluster.core(1).propose(b"still-working")
    cluster.stabilize()
    assert cluster.nodes[2].applied[-1] == b"still-working"


def test_follower_that_lost_a_full_inflight_window_catches_up() -> None:
    """Lost APPENDs filled the pipeline window; heartbeat responses must reopen it."""
    cluster = Cluster()
    cluster.add_nodes(3, RaftConfig(max_inflight_msgs=2))
    cluster.elect(1)
    cluster.isolate(3)
    for i in range(6):
        cluster.core(1).propose(b"cmd%d" % i)
        cluster.stabilize()
    cluster.heal()
    for _ in range(5):
        cluster.tick(1)
        cluster.stabilize()
    assert cluster.core(3).last_index == cluster.core(1).last_index
    assert cluster.nodes[3].applied == cluster.nodes[1].applied


def test_joining_node_learns_the_initial_membership_from_the_bootstrap_snapshot() -> None:
    cluster = Cluster()
    cluster.add_nodes(3)
    cluster.elect(1)
    cluster.add_nodes(1, voters=())
    cluster.core(1).propose_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    cluster.stabilize()
    assert cluster.core(4).conf_state == cluster.core(1).conf_state
    assert cluster.core(4).conf_state.voters == {1, 2, 3, 4}


def test_follower_that_installed_a_superseded_snapshot_gets_the_current_one() -> None:
    """The leader compacted again while its first snapshot was on the way; once the
    follower installs the old one it must be sent the new one, not the old one forever."""
    cluster = Cluster()
    cluster.add_nodes(3, RaftConfig(compaction_keep_entries=0))
    cluster.elect(1)
    leader = cluster.nodes[1]

    def write_and_compact(tag: bytes) -> None:
        for i in range(4):
            leader.core.propose(tag + b"%d" % i)
            cluster.stabilize()
        leader.core.compact(leader.core.applied, b"\n".join(leader.applied))
        cluster.stabilize()

    cluster.isolate(3)
    write_and_compact(b"a")
    cluster.heal()
    cluster.tick(1)
    held = None
    while held is None:
        for i in sorted(cluster.nodes):
            cluster.handle_ready(i)
        held = next((m for m in cluster.queue if m.type is MT.SNAPSHOT), None)
        if held is None:
            for i in sorted(cluster.nodes):
                cluster.deliver(i)
    cluster.queue.remove(held)
    cluster.isolate(3)
    write_and_compact(b"b")
    cluster.heal()
    cluster.core(3).step(held)
    for _ in range(10):
        cluster.tick(1)
        cluster.stabilize()
    assert cluster.core(3).last_index == leader.core.last_index
    assert cluster.nodes[3].applied == leader.applied
