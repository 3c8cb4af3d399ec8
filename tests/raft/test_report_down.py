"""`RaftCore.report_down`: the transport's word that a node's process is gone lets the
followers of a dead leader elect another within a few ticks, and a wrong word changes
nothing lasting."""

from dkron_trio.raft.types import Role
from tests.raft.harness import Cluster

ELECTION_TICKS = 10  # RaftConfig's default: the randomized timeout is 10 to 19 ticks


def _three(seed: int = 0) -> Cluster:
    cluster = Cluster(seed=seed, verbose=False)
    cluster.add_nodes(3)
    cluster.elect(1)
    return cluster


def _ticks_until_leader(cluster: Cluster, limit: int) -> int | None:
    for ticks in range(1, limit + 1):
        cluster.tick_all()
        cluster.stabilize()
        if cluster.leader() not in (0, 1):
            return ticks
    return None


def test_followers_told_the_leader_is_down_elect_another_within_two_ticks() -> None:
    for seed in range(20):  # every randomized timeout: the report does not depend on it
        cluster = _three(seed)
        term = cluster.core(2).term
        cluster.crash(1)
        for follower in (2, 3):
            cluster.core(follower).report_down(1)
        assert _ticks_until_leader(cluster, ELECTION_TICKS) == 1, seed
        assert cluster.leader() == 2  # the lower id of the two waits one tick, the other two
        assert cluster.core(3).leader_id == 2
        assert cluster.core(2).term == term + 1


def test_without_a_report_the_followers_wait_a_whole_election_timeout() -> None:
    cluster = _three()
    cluster.crash(1)
    ticks = _ticks_until_leader(cluster, 2 * ELECTION_TICKS)
    assert ticks is not None and ticks >= ELECTION_TICKS


def test_one_follower_told_alone_still_gets_the_other_ones_vote_once_its_lease_runs_out() -> None:
    cluster = _three()
    cluster.crash(1)
    cluster.core(2).report_down(1)
    ticks = _ticks_until_leader(cluster, 2 * ELECTION_TICKS)
    assert ticks is not None
    assert cluster.leader() in (2, 3)


def test_a_report_about_a_node_that_is_not_the_leader_changes_nothing() -> None:
    cluster = _three()
    before = cluster.core(2).status()
    cluster.core(2).report_down(3)
    cluster.core(2).report_down(0)
    cluster.core(1).report_down(2)  # the leader itself
    assert cluster.core(2).status() == before
    assert cluster.core(2).leader_id == 1
    assert cluster.core(1).role is Role.LEADER


def test_a_wrong_report_about_a_live_leader_costs_no_term() -> None:
    cluster = _three()
    term = cluster.core(1).term
    cluster.core(2).report_down(1)
    cluster.core(3).report_down(1)
    for _ in range(3 * ELECTION_TICKS):
        cluster.tick_all()
        cluster.stabilize()
    assert cluster.leader() == 1
    assert cluster.core(1).term == term
    assert cluster.core(2).leader_id == cluster.core(3).leader_id == 1
