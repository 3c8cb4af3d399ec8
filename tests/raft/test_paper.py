"""One test (or more) per rule of the Raft paper, §5.1-5.4, on the plain algorithm
(pre-vote and check-quorum off unless a test says otherwise)."""

from __future__ import annotations

import random

import pytest

from dkron_trio.raft.core import RaftCore
from dkron_trio.raft.errors import RaftError
from dkron_trio.raft.storage import MemoryRaftStorage
from dkron_trio.raft.types import (
    ConfState,
    Entry,
    HardState,
    MessageType,
    RaftConfig,
    Role,
)

from .harness import Cluster
from .helpers import PAPER, drain, log_terms, msg, new_core, sent, storage_at_zero

MT = MessageType

# -- §5.1 basics ------------------------------------------------------------------------


def test_5_1_servers_start_as_followers() -> None:
    core, _ = new_core()
    assert core.role is Role.FOLLOWER
    assert core.leader_id == 0


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE, Role.LEADER])
def test_5_1_larger_term_makes_any_server_a_follower_of_that_term(role: Role) -> None:
    core, storage = new_core(term=1)
    if role is not Role.FOLLOWER:
        core.campaign()
        sent(core, storage)
        if role is Role.LEADER:
            core.step(msg(MT.VOTE_RESPONSE, 2, 1, core.term))
            sent(core, storage)
    assert core.role is role
    core.step(msg(MT.APPEND, 2, 1, 10, log_term=0, index=0))
    assert (core.role, core.term, core.leader_id) == (Role.FOLLOWER, 10, 2)


def test_5_1_request_with_stale_term_is_rejected() -> None:
    core, storage = new_core(terms=[1], term=3)
    core.step(msg(MT.APPEND, 2, 1, 2, log_term=1, index=1, entries=(Entry(2, 2),)))
    out = sent(core, storage)
    assert core.last_index == 1
    # The stale leader learns the newer term from the response.
    assert [(m.type, m.term) for m in out] == [(MT.APPEND_RESPONSE, 3)]


# -- §5.2 leader election -----------------------------------------------------------------


def test_5_2_leader_sends_heartbeats_every_heartbeat_timeout() -> None:
    cluster = Cluster()
    cluster.add_nodes(3, PAPER)
    cluster.elect(1)
    leader = cluster.core(1)
    drain(leader)
    leader.tick()
    beats = [m for m in drain(leader).messages if m.type is MT.HEARTBEAT]
    assert sorted(m.to for m in beats) == [2, 3]


def test_5_2_follower_times_out_and_campaigns_for_next_term() -> None:
    core, storage = new_core(term=1)
    for _ in range(2 * PAPER.election_ticks):
        core.tick()
    rd = drain(core, storage)
    assert core.role is Role.CANDIDATE
    assert core.term == 2
    assert rd.hard_state is not None and rd.hard_state.vote == 1  # votes for itself
    assert sorted((m.to, m.type) for m in rd.messages) == [(2, MT.VOTE), (3, MT.VOTE)]


def test_5_2_election_timeout_is_randomized_in_election_to_twice_election() -> None:
    fired_after = set()
    for seed in range(40):
        core, _ = new_core(seed=seed)
        ticks = 0
        while core.role is Role.FOLLOWER:
            core.tick()
            ticks += 1
        fired_after.add(ticks)
    e = PAPER.election_ticks
    assert min(fired_after) >= e and max(fired_after) < 2 * e
    assert len(fired_after) > e // 2  # actually spread out


@pytest.mark.parametrize(
    ("size", "granted", "rejected", "expected"),
    [
        (1, [], [], Role.LEADER),
        (3, [2], [], Role.LEADER),
        (3, [], [2], Role.CANDIDATE),
        (3, [], [2, 3], Role.FOLLOWER),
        (5, [2], [], Role.CANDIDATE),
        (5, [2, 3], [], Role.LEADER),
        (5, [2], [3, 4], Role.CANDIDATE),
        (5, [], [2, 3, 4], Role.FOLLOWER),
    ],
)
def test_5_2_candidate_wins_with_votes_from_a_majority(
    size: int, granted: list[int], rejected: list[int], expected: Role
) -> None:
    core, storage = new_core(voters=range(1, size + 1))
    core.campaign()
    drain(core, storage)
    for peer in granted:
        core.step(msg(MT.VOTE_RESPONSE, peer, 1, core.term))
    for peer in rejected:
        core.step(msg(MT.VOTE_RESPONSE, peer, 1, core.term, reject=True))
    assert core.role is expected


def test_5_2_each_server_votes_for_at_most_one_candidate_per_term() -> None:
    core, storage = new_core(node_id=3, term=1)
    core.step(msg(MT.VOTE, 1, 3, 2))
    core.step(msg(MT.VOTE, 2, 3, 2))
    core.step(msg(MT.VOTE, 1, 3, 2))  # a retry from the chosen candidate is granted again
    out = sent(core, storage)
    assert [(m.to, m.reject) for m in out] == [(1, False), (2, True), (1, False)]
    assert storage.initial_state()[0].vote == 1


def test_5_2_candidate_returns_to_follower_on_append_from_leader_of_same_term() -> None:
    core, storage = new_core(term=1)
    core.campaign()
    drain(core, storage)
    core.step(msg(MT.APPEND, 2, 1, core.term, log_term=0, index=0))
    assert core.role is Role.FOLLOWER
    assert core.leader_id == 2


def test_5_2_split_vote_leads_to_a_new_election_after_timeout() -> None:
    core, storage = new_core(voters=(1, 2, 3, 4))
    core.campaign()
    drain(core, storage)
    core.step(msg(MT.VOTE_RESPONSE, 2, 1, 1))
    core.step(msg(MT.VOTE_RESPONSE, 3, 1, 1, reject=True))
    core.step(msg(MT.VOTE_RESPONSE, 4, 1, 1, reject=True))
    assert core.role is Role.FOLLOWER and core.term == 1
    for _ in range(2 * PAPER.election_ticks):
        core.tick()
    assert core.status().role is Role.CANDIDATE and core.term == 2


# -- §5.3 log replication -----------------------------------------------------------------


def test_5_3_leader_appends_command_and_replicates_it() -> None:
    cluster = Cluster()
    cluster.add_nodes(3, PAPER)
    cluster.elect(1)
    index = cluster.core(1).propose(b"cmd")
    rd = drain(cluster.core(1), cluster.nodes[1].storage)
    assert [e.data for e in rd.entries] == [b"cmd"]
    appends = [m for m in rd.messages if m.type is MT.APPEND]
    assert sorted(m.to for m in appends) == [2, 3]
    assert all(m.entries[-1].index == index for m in appends)


def test_5_3_entry_is_committed_once_replicated_on_a_majority() -> None:
    cluster = Cluster()
    cluster.add_nodes(5, PAPER)
    cluster.elect(1)
    leader = cluster.core(1)
    index = leader.propose(b"cmd")
    cluster.partition([1, 2], [3, 4, 5])
    cluster.stabilize()
    assert leader.commit < index  # only 2 of 5 copies
    cluster.partition([1, 2, 3], [4, 5])
    leader.tick()  # heartbeat response triggers re-sending to 3
    cluster.stabilize()
    assert leader.commit == index


def test_5_3_followers_apply_committed_entries_in_log_order() -> None:
    cluster = Cluster()
    cluster.add_nodes(3, PAPER)
    cluster.elect(1)
    for data in (b"a", b"b", b"c"):
        cluster.core(1).propose(data)
    cluster.stabilize()
    assert all(n.applied == [b"a", b"b", b"c"] for n in cluster.nodes.values())


def test_5_3_follower_rejects_append_whose_previous_entry_does_not_match() -> None:
    core, storage = new_core(node_id=2, terms=[1, 2], term=2)
    core.step(msg(MT.APPEND, 1, 2, 3, log_term=3, index=2, entries=(Entry(3, 3),)))
    out = sent(core, storage)
    assert out[0].type is MT.APPEND_RESPONSE and out[0].reject
    assert log_terms(core) == [1, 2]


def test_5_3_follower_deletes_conflicting_entries_and_appends_new_ones() -> None:
    core, storage = new_core(node_id=2, terms=[1, 1, 2, 2], term=2)
    core.step(msg(MT.APPEND, 1, 2, 3, log_term=1, index=2, entries=(Entry(3, 3), Entry(3, 4))))
    out = sent(core, storage)
    assert not out[0].reject and out[0].index == 4
    assert log_terms(core) == [1, 1, 3, 3]


# Figure 7 of the Raft paper: the leader of term 8 and followers (a)-(f).
FIGURE_7_LEADER = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
FIGURE_7_FOLLOWERS = {
    "a": [1, 1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 1, 4],
    "c": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 1, 4, 4, 4, 4],
    "f": [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


@pytest.mark.parametrize("case", sorted(FIGURE_7_FOLLOWERS))
def test_5_3_leader_brings_any_follower_log_into_line_with_its_own(case: str) -> None:
    """Figure 7: the leader backs nextIndex up until the logs match, then the follower's
    conflicting entries are replaced by the leader's."""
    storages = {
        1: _storage_with(FIGURE_7_LEADER),
        2: _storage_with(FIGURE_7_FOLLOWERS[case]),
        3: _storage_with(FIGURE_7_LEADER[:-3]),
    }
    cores = {i: RaftCore(i, s, PAPER, random.Random(i)) for i, s in storages.items()}
    cluster = Cluster()
    for i, core in cores.items():
        node = cluster.add_node(i, ConfState(frozenset({1, 2, 3})), PAPER)
        node.core, node.storage = core, storages[i]
    cluster.elect(1)
    assert cluster.core(1).role is Role.LEADER
    leader_log = log_terms(cluster.core(1))
    assert leader_log[:10] == FIGURE_7_LEADER
    assert log_terms(cluster.core(2)) == leader_log


def _storage_with(terms: list[int]) -> MemoryRaftStorage:
    storage = storage_at_zero(ConfState(frozenset({1, 2, 3})))
    storage.append([Entry(t, i + 1) for i, t in enumerate(terms)])
    storage.set_hard_state(HardState(term=8 if terms else 0))
    return storage


def test_5_3_leader_never_overwrites_or_deletes_its_own_entries() -> None:
    core, storage = new_core(terms=[1, 1], term=1)
    core.campaign()
    drain(core, storage)
    core.step(msg(MT.VOTE_RESPONSE, 2, 1, 2))
    drain(core, storage)
    before = core.log_entries(1, core.last_index + 1)
    # A response claiming a conflict cannot make the leader touch its log.
    core.step(msg(MT.APPEND_RESPONSE, 2, 1, 2, index=3, reject=True, reject_hint=0))
    drain(core, storage)
    assert core.log_entries(1, len(before) + 1) == before


# -- §5.4.1 election restriction ------------------------------------------------------------


@pytest.mark.parametrize(
    ("cand_last_term", "cand_last_index", "granted"),
    [
        (1, 1, False),  # older last term
        (1, 5, False),  # older last term, longer log
        (2, 1, False),  # same last term, shorter log
        (2, 2, True),  # same
        (2, 3, True),  # same term, longer
        (3, 1, True),  # newer last term, shorter log
    ],
)
def test_5_4_1_voter_denies_vote_to_candidate_with_less_up_to_date_log(
    cand_last_term: int, cand_last_index: int, granted: bool
) -> None:
    core, storage = new_core(node_id=2, terms=[1, 2], term=2)
    core.step(msg(MT.VOTE, 1, 2, 3, log_term=cand_last_term, index=cand_last_index))
    out = sent(core, storage)
    assert out[0].type is MT.VOTE_RESPONSE and out[0].reject is (not granted)


def test_5_4_1_node_missing_committed_entries_cannot_become_leader() -> None:
    cluster = Cluster()
    cluster.add_nodes(3, PAPER)
    cluster.elect(1)
    cluster.isolate(3)
    index = cluster.core(1).propose(b"committed")
    cluster.stabilize()
    assert cluster.core(1).commit == index
    cluster.heal()
    cluster.crash(1)
    cluster.core(3).campaign()
    cluster.stabilize()
    assert cluster.core(3).role is not Role.LEADER
    cluster.core(2).campaign()
    cluster.stabilize()
    assert cluster.core(2).role is Role.LEADER
    assert cluster.nodes[3].applied == [b"committed"]


# -- §5.4.2 committing entries from previous terms -------------------------------------------


def test_5_4_2_leader_does_not_commit_previous_term_entries_by_counting_replicas() -> None:
    core, storage = new_core(terms=[1, 2], term=2)
    core.campaign()  # term 3
    drain(core, storage)
    core.step(msg(MT.VOTE_RESPONSE, 2, 1, 3))
    drain(core, storage)  # persists the term-3 no-op at index 3
    core.step(msg(MT.APPEND_RESPONSE, 2, 1, 3, index=2))
    assert core.commit == 0  # index 2 (term 2) is on a majority but not committable
    core.step(msg(MT.APPEND_RESPONSE, 2, 1, 3, index=3))
    assert core.commit == 3  # committing the term-3 entry commits index 2 indirectly


# -- §5.4.3 state machine safety -----------------------------------------------------------


def test_5_4_3_all_servers_apply_the_same_commands_in_the_same_order() -> None:
    rng = random.Random(7)
    cluster = Cluster(seed=7)
    cluster.add_nodes(5, RaftConfig())
    proposed = 0
    for step in range(300):
        if step % 40 == 0:
            groups = list(cluster.nodes)
            rng.shuffle(groups)
            cut = rng.randrange(1, 5)
            cluster.partition(groups[:cut], groups[cut:])
        if step % 40 == 25:
            cluster.heal()
        leader = cluster.leader()
        if leader and rng.random() < 0.5:
            try:
                cluster.core(leader).propose(b"c%d" % proposed)
                proposed += 1
            except RaftError:
                pass
        cluster.tick_all()
        cluster.stabilize()
    cluster.heal()
    for _ in range(40):
        cluster.tick_all()
        cluster.stabilize()
    logs = [n.applied for n in cluster.nodes.values()]
    longest = max(logs, key=len)
    assert all(log == longest[: len(log)] for log in logs)
    assert len(longest) > 20
