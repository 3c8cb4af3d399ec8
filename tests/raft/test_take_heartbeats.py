"""`RaftCore.take_heartbeats`: what a busy shell may send before the next Ready."""

from dkron_trio.raft.types import MessageType
from tests.raft.harness import Cluster
from tests.raft.helpers import msg


def _elected() -> Cluster:
    cluster = Cluster(verbose=False)
    cluster.add_nodes(3)
    cluster.elect(1)
    return cluster


def test_a_leader_hands_over_its_heartbeats_and_nothing_else() -> None:
    cluster = _elected()
    leader = cluster.core(1)
    leader.propose(b"x")  # an APPEND waits for the Ready: it must stay there
    leader.tick()
    beats = leader.take_heartbeats()
    assert sorted(m.to for m in beats) == [2, 3]
    assert {m.type for m in beats} == {MessageType.HEARTBEAT}
    assert leader.take_heartbeats() == []
    rest = leader.ready().messages
    assert rest and all(m.type is not MessageType.HEARTBEAT for m in rest)


def test_a_reply_under_a_term_not_yet_persisted_waits_for_the_ready() -> None:
    cluster = _elected()
    follower = cluster.core(2)
    term = follower.term + 1
    follower.step(msg(MessageType.HEARTBEAT, 3, 2, term, commit=0))
    assert follower.term == term
    assert follower.take_heartbeats() == []  # the new term is not durable yet
    cluster.handle_ready(2)  # persisted and advanced
    follower.step(msg(MessageType.HEARTBEAT, 3, 2, term, commit=0))
    replies = follower.take_heartbeats()
    assert [(m.type, m.to, m.term) for m in replies] == [
        (MessageType.HEARTBEAT_RESPONSE, 3, term)
    ]
