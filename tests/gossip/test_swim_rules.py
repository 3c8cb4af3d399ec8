"""SWIM rules, one by one, on hand-driven cores (no event loop)."""

from __future__ import annotations

import math
import random

import pytest

from dkron_trio.gossip.codec import encode_packet
from dkron_trio.gossip.config import SEAL_OVERHEAD, GossipConfig
from dkron_trio.gossip.messages import (
    Ack,
    Alive,
    Dead,
    MemberState,
    Nack,
    NodeState,
    Ping,
    PingReq,
    PushPull,
    Suspect,
)
from dkron_trio.gossip.swim import SwimCore
from dkron_trio.gossip.swim_broadcast import BroadcastQueue, retransmit_limit
from dkron_trio.gossip.swim_suspicion import Suspicion, suspicion_timeout
from dkron_trio.gossip.swim_types import EventKind, Member, TagsTooLarge
from tests.gossip.helpers import Net, addr

CFG = GossipConfig()


def test_probe_is_answered_and_keeps_health() -> None:
    net = Net.formed(["a", "b"])
    net.step(CFG.probe_interval_ticks * 3)
    pings = net.messages("a", "b", Ping)
    assert len(pings) == 3
    assert len(net.messages("b", "a", Ack)) >= 3
    assert net.cores["a"].state_of("b") is MemberState.ALIVE
    assert net.cores["a"].awareness == 0


def test_indirect_probe_saves_a_member_behind_a_broken_link() -> None:
    net = Net.formed(["a", "b", "c", "d", "e"])
    net.drop = lambda s, d, p: {s, d} == {"a", "b"}
    net.step(CFG.probe_interval_ticks * 12)
    assert net.messages("a", "c", PingReq) or net.messages("a", "d", PingReq)
    assert net.cores["a"].state_of("b") is MemberState.ALIVE
    assert EventKind.SUSPECT not in net.kinds("a", "b")


def test_nacks_show_the_prober_is_healthy_when_the_target_is_down() -> None:
    net = Net.formed(["a", "b", "c", "d", "e"])
    del net.cores["b"]
    net.step(CFG.probe_interval_ticks * 5)
    nacks = [m for helper in "cde" for m in net.messages(helper, "a", Nack)]
    assert len(nacks) == CFG.indirect_checks
    assert net.cores["a"].state_of("b") is MemberState.SUSPECT
    assert net.cores["a"].awareness == 0


def test_missing_nacks_lower_local_health_and_stretch_probing() -> None:
    net = Net.formed(["a", "b", "c", "d", "e"])
    net.drop = lambda s, d, p: "a" in (s, d)  # a is cut off: nobody acks or nacks
    net.step(CFG.probe_interval_ticks * 2)
    assert net.cores["a"].awareness == CFG.indirect_checks
    start = len(net.sent)
    net.step(CFG.probe_interval_ticks * 4)
    pings = [i for i, (s, _, p) in enumerate(net.sent[start:]) if s == "a" and type(p[0]) is Ping]
    # With awareness 3 the probe interval is 4 seconds: one probe in four seconds.
    assert len(pings) == 1


def test_suspicion_timer_shrinks_with_independent_confirmations() -> None:
    low, high = 68, 408
    s = Suspicion.begin(100, "x", 2, low, high)
    assert s.deadline == 100 + high
    assert s.confirm("y")
    assert s.deadline == 100 + math.floor(high - math.log(2) / math.log(3) * (high - low))
    assert not s.confirm("y")
    assert not s.confirm("x")
    assert s.confirm("z")
    assert s.deadline == 100 + low
    assert not s.confirm("w")
    assert suspicion_timeout(4, 50, 10) == 68
    assert suspicion_timeout(4, 5, 10) == 40


def test_confirmed_suspicion_expires_into_dead() -> None:
    names = ["a", "b", "c", "d", "e", "f"]
    net = Net.formed(names)
    a = net.cores["a"]
    a.receive(addr("c"), (Suspect(1, "b", "c"),))
    timer = a.suspicion("b")
    assert timer is not None
    unconfirmed = timer.deadline
    a.receive(addr("d"), (Suspect(1, "b", "d"),))
    a.receive(addr("e"), (Suspect(1, "b", "e"),))
    assert timer.confirmations == 2
    assert timer.deadline < unconfirmed
    for _ in range(timer.deadline - a.now):
        a.tick()
    assert a.state_of("b") is MemberState.DEAD
    assert [e.kind for e in a.take_events() if e.member.name == "b"] == [
        EventKind.SUSPECT,
        EventKind.FAILED,
    ]


@pytest.mark.parametrize("rumour", [Suspect(1, "a", "b"), Dead(1, "a", "b")])
def test_a_member_refutes_news_of_its_own_failure(rumour: Suspect | Dead) -> None:
    net = Net.formed(["a", "b", "c"])
    a = net.cores["a"]
    a.receive(addr("b"), (rumour,))
    assert a.incarnation == 2
    assert a.awareness == 1
    assert a.state_of("a") is MemberState.ALIVE
    assert a.queued_transmits("a") == 0
    net.deliver()
    net.step(CFG.gossip_interval_ticks * 2)
    assert net.cores["b"].member("a") == Member("a", addr("a"), {}, 2, MemberState.ALIVE)


def test_stale_news_about_oneself_is_answered_not_refuted_again() -> None:
    net = Net.formed(["a", "b"])
    a = net.cores["a"]
    a.receive(addr("b"), (Suspect(1, "a", "b"),))
    a.take_outbox()
    a.receive(addr("b"), (Suspect(1, "a", "b"), Dead(1, "a", "b")))
    assert a.incarnation == 2
    replies = [p[0] for to, p in a.take_outbox() if to == addr("b")]
    assert replies == [Alive(2, "a", addr("a"), {})] * 2


S, A, D, L = MemberState.SUSPECT, MemberState.ALIVE, MemberState.DEAD, MemberState.LEFT


@pytest.mark.parametrize(
    ("start", "msg", "state", "incarnation"),
    [
        (A, Suspect(5, "x", "b"), S, 5),
        (A, Suspect(4, "x", "b"), A, 5),
        (A, Suspect(6, "x", "b"), S, 6),
        (A, Alive(5, "x", addr("x"), {}), A, 5),
        (A, Dead(5, "x", "b"), D, 5),
        (A, Dead(4, "x", "b"), A, 5),
        (A, Dead(5, "x", "x"), L, 5),
        (S, Alive(5, "x", addr("x"), {}), S, 5),
        (S, Alive(6, "x", addr("x"), {}), A, 6),
        (S, Dead(5, "x", "b"), D, 5),
        (D, Alive(5, "x", addr("x"), {}), D, 5),
        (D, Alive(6, "x", addr("x"), {}), A, 6),
        (D, Suspect(9, "x", "b"), D, 5),
        (D, Dead(9, "x", "x"), D, 5),
        (L, Alive(5, "x", addr("x"), {}), L, 5),
        (L, Alive(6, "x", addr("x"), {}), A, 6),
        (L, Dead(7, "x", "b"), L, 5),
    ],
)
def test_precedence(
    start: MemberState, msg: Alive | Suspect | Dead, state: MemberState, incarnation: int
) -> None:
    core = SwimCore.create(
        "a", addr("a"), {}, CFG, random.Random(1),
        known=[Member("x", addr("x"), {}, 5, start), Member("b", addr("b"), {}, 1, A)],
    )
    core.receive(addr("b"), (msg,))
    member = core.member("x")
    assert member is not None
    assert (member.state, member.incarnation) == (state, incarnation)


def test_events_follow_state_changes() -> None:
    core = SwimCore.create("a", addr("a"), {}, CFG, random.Random(1))
    core.receive(addr("x"), (Alive(1, "x", addr("x"), {"role": "agent"}),))
    core.receive(addr("x"), (Alive(2, "x", addr("x"), {"role": "server"}),))
    core.receive(addr("b"), (Suspect(2, "x", "b"),))
    core.receive(addr("x"), (Alive(3, "x", addr("x"), {"role": "server"}),))
    core.receive(addr("b"), (Dead(3, "x", "b"),))
    core.receive(addr("x"), (Alive(4, "x", addr("x"), {"role": "server"}),))
    core.receive(addr("x"), (Dead(4, "x", "x"),))
    assert [e.kind for e in core.take_events()] == [
        EventKind.JOINED,
        EventKind.UPDATED,
        EventKind.SUSPECT,
        EventKind.RECOVERED,
        EventKind.FAILED,
        EventKind.JOINED,
        EventKind.LEFT,
    ]


def test_leave_intent_spreads_and_the_leaver_is_not_probed() -> None:
    net = Net.formed(["a", "b", "c", "d"])
    net.cores["a"].leave()
    assert not net.cores["a"].leave_done
    net.step(CFG.gossip_interval_ticks * 10)
    for n in "bcd":
        assert net.cores[n].state_of("a") is MemberState.LEFT
        assert net.kinds(n, "a") == [EventKind.LEFT]
    assert net.cores["a"].leave_done
    start = len(net.sent)
    net.step(CFG.probe_interval_ticks * 5)
    assert not [p for s, d, p in net.sent[start:] if d == "a" and type(p[0]) is Ping]
    assert not [p for s, d, p in net.sent[start:] if s == "a" and type(p[0]) is Ping]


def test_failed_members_are_reaped_after_the_reconnect_timeout() -> None:
    cfg = GossipConfig(reconnect_timeout_ticks=50, reap_interval_ticks=5)
    core = SwimCore.create(
        "a", addr("a"), {}, cfg, random.Random(1),
        known=[Member("x", addr("x"), {}, 1, A), Member("y", addr("y"), {}, 1, A)],
    )
    core.take_events()
    core.receive(addr("y"), (Dead(1, "x", "y"), Dead(1, "y", "y")))
    for _ in range(45):
        core.tick()
    assert core.member("x") is not None
    for _ in range(10):
        core.tick()
    assert core.member("x") is None and core.member("y") is None
    kinds = [(e.kind, e.member.name) for e in core.take_events()]
    assert (EventKind.REAPED, "x") in kinds and (EventKind.REAPED, "y") in kinds


def test_news_is_sent_a_limited_number_of_times() -> None:
    n = 10
    names = [f"n{i}" for i in range(n)]
    net = Net.formed(names)
    a = net.cores["n0"]
    a.set_tags({"role": "server"})
    limit = retransmit_limit(CFG.retransmit_mult, n)
    assert limit == CFG.retransmit_mult * math.ceil(math.log10(n + 1))
    while a.queued_transmits("n0") is not None:
        a.tick()
        net.deliver()
    sent = [m for s, _, p in net.sent if s == "n0" for m in p if type(m) is Alive]
    assert len(sent) == limit


def test_newer_news_about_a_member_replaces_older() -> None:
    q = BroadcastQueue()
    q.queue("x", Suspect(1, "x", "a"), 10)
    q.queue("y", Suspect(1, "y", "a"), 10)
    q.queue("x", Alive(2, "x", addr("x"), {}), 10)
    assert len(q) == 2
    taken = q.take(100, 3)
    assert Suspect(1, "x", "a") not in taken and Alive(2, "x", addr("x"), {}) in taken
    assert q.take(5, 3) == []  # nothing fits in 5 bytes


def test_piggybacked_news_never_overflows_a_datagram() -> None:
    core = SwimCore.create("a", addr("a"), {}, CFG, random.Random(3))
    big = {f"k{i}": "v" * 40 for i in range(10)}
    for i in range(200):
        core.receive(addr("x"), (Alive(1, f"member-{i:03}", addr(f"m{i}"), big),))
    core.take_outbox()
    for _ in range(40):
        core.tick()
    core.receive(addr("x"), (PushPull(True, ()),))
    out = core.take_outbox()
    assert len([p for _, p in out if type(p[0]) is PushPull]) > 1
    limit = CFG.udp_buffer_size - SEAL_OVERHEAD
    assert all(len(encode_packet(p)) <= limit for _, p in out)
    assert any(len(p) > 1 for _, p in out if type(p[0]) is not PushPull)


def test_tags_over_the_meta_limit_are_refused() -> None:
    with pytest.raises(TagsTooLarge, match="512"):
        SwimCore.create("a", addr("a"), {"x": "y" * 600}, CFG, random.Random(1))
    core = SwimCore.create("a", addr("a"), {}, CFG, random.Random(1))
    with pytest.raises(TagsTooLarge):
        core.set_tags({"x": "y" * 600})
    assert core.incarnation == 1


def test_join_retries_until_a_seed_answers() -> None:
    cfg = GossipConfig()
    rng = random.Random(5)
    net = Net({n: SwimCore.create(n, addr(n), {"dc": n}, cfg, rng) for n in ["s", "j"]})
    attempts: list[int] = []

    def drop(src: str, dst: str, packet: tuple[object, ...]) -> bool:
        if src == "j" and type(packet[0]) is PushPull:
            attempts.append(net.cores["j"].now)
            return len(attempts) < 3
        return False

    net.drop = drop
    net.cores["j"].join([addr("s"), addr("j")])
    net.deliver()
    assert not net.cores["j"].joined
    net.step(cfg.join_retry_ticks * 3)
    assert net.cores["j"].joined
    assert attempts[:3] == [0, cfg.join_retry_ticks, 2 * cfg.join_retry_ticks]
    assert net.cores["s"].member("j") == Member("j", addr("j"), {"dc": "j"}, 1, A)
    assert net.cores["j"].member("s") == Member("s", addr("s"), {"dc": "s"}, 1, A)
    assert net.kinds("s", "j") == [EventKind.JOINED]


def test_push_pull_merges_remote_state_like_memberlist() -> None:
    core = SwimCore.create(
        "a", addr("a"), {}, CFG, random.Random(1), known=[Member("b", addr("b"), {}, 1, A)]
    )
    core.receive(addr("b"), (PushPull(False, (
        NodeState("b", addr("b"), 1, A, {}),
        NodeState("c", addr("c"), 3, A, {"r": "1"}),
        NodeState("d", addr("d"), 2, A, {}),
        NodeState("e", addr("e"), 2, A, {}),
    )),))
    core.receive(addr("b"), (PushPull(False, (
        NodeState("d", addr("d"), 2, D, {}),
        NodeState("e", addr("e"), 2, L, {}),
    )),))
    assert core.state_of("c") is A
    assert core.state_of("d") is S  # remote dead: we check for ourselves
    assert core.state_of("e") is L


def test_periodic_push_pull_with_a_live_member() -> None:
    net = Net.formed(["a", "b"])
    net.step(CFG.push_pull_interval_ticks + 1)
    requests = [p[0] for s, _, p in net.sent if s == "a" and type(p[0]) is PushPull]
    replies = [p[0] for s, _, p in net.sent if s == "b" and type(p[0]) is PushPull]
    assert any(r.reply for r in requests if isinstance(r, PushPull))
    assert replies


def test_advance_equals_ticking() -> None:
    def run(advance: bool) -> list[object]:
        net = Net.formed(["a", "b", "c", "d"], seed=9)
        a = net.cores["a"]
        a.receive(addr("b"), (Suspect(1, "c", "b"),))
        out: list[object] = []
        for chunk in (3, 17, 1, 40, 100):
            if advance:
                a.advance(chunk)
            else:
                for _ in range(chunk):
                    a.tick()
            out.append((a.now, a.take_outbox(), a.take_events()))
        return out

    assert run(True) == run(False)


def test_ack_to_an_indirect_probe_is_forwarded() -> None:
    core = SwimCore.create(
        "h", addr("h"), {}, CFG, random.Random(1), known=[Member("t", addr("t"), {}, 1, A)]
    )
    core.receive(addr("o"), (PingReq(77, "t", addr("t"), True),))
    ((to, (ping, *_)),) = core.take_outbox()
    assert to == addr("t") and isinstance(ping, Ping)
    core.receive(addr("t"), (Ack(ping.seq),))
    assert core.take_outbox() == [(addr("o"), (Ack(77),))]
    for _ in range(CFG.probe_interval_ticks):
        core.tick()
    assert not [p for _, p in core.take_outbox() if type(p[0]) is Nack]


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="probe_timeout_ticks"):
        GossipConfig(probe_timeout_ticks=10, probe_interval_ticks=10)
    with pytest.raises(ValueError, match="gossip_nodes"):
        GossipConfig(gossip_nodes=0)
    with pytest.raises(ValueError, match="udp_buffer_size"):
        GossipConfig(udp_buffer_size=100)
    assert GossipConfig().probe_interval_ticks == 10
