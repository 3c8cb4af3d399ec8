"""The UDP shell on 127.0.0.1 with free ports, in virtual time (MockClock): joins, tags,
encryption, rotation, and counted rejection of bad datagrams."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from dkron_trio.config import HostPort
from dkron_trio.gossip.codec import encode_packet
from dkron_trio.gossip.config import parse_key
from dkron_trio.gossip.keyring import Keyring, generate_key
from dkron_trio.gossip.messages import Alive, MemberState
from dkron_trio.gossip.udp import GossipNode

LOCAL = HostPort("127.0.0.1", 0)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@asynccontextmanager
async def cluster(
    nodes: list[GossipNode],
) -> AsyncIterator[tuple[list[HostPort], trio.Nursery]]:
    async with trio.open_nursery() as nursery:
        addrs = [await nursery.start(n.run) for n in nodes]
        yield addrs, nursery
        nursery.cancel_scope.cancel()


def node(name: str, seed: int, *, keyring: Keyring | None = None, **tags: str) -> GossipNode:
    return GossipNode(name, LOCAL, tags=tags, keyring=keyring, rng=random.Random(seed))


def _tags(n: GossipNode, name: str) -> dict[str, str]:
    m = n.core.member(name)
    return {} if m is None else m.tags


def alive_names(n: GossipNode) -> set[str]:
    return {m.name for m in n.members() if m.state is MemberState.ALIVE}


async def wait(clock: GossipNode, predicate: Callable[[], bool], seconds: float = 30.0) -> None:
    """Wait for a condition on any nodes, checked after each tick of the running `clock`."""
    with trio.fail_after(seconds):
        await clock.wait_until(predicate)


async def test_nodes_join_and_see_each_others_tags(autojump_clock: trio.testing.MockClock) -> None:
    nodes = [node(f"n{i}", i, role="agent", dc=f"dc{i}") for i in range(4)]
    async with cluster(nodes) as (addrs, _):
        for n in nodes[1:]:
            n.join([addrs[0]])
        names = {f"n{i}" for i in range(4)}
        await wait(nodes[0], lambda: all(alive_names(n) == names for n in nodes))
        for n in nodes:
            assert {m.name: m.tags["dc"] for m in n.members()} == {
                f"n{i}": f"dc{i}" for i in range(4)
            }
        nodes[2].set_tags({"role": "server", "dc": "dc2"})
        await wait(nodes[0], lambda: all(_tags(n, "n2").get("role") == "server" for n in nodes))
        assert all(n.stats.malformed == n.stats.unsealed == 0 for n in nodes)


async def test_graceful_leave_shows_as_left(autojump_clock: trio.testing.MockClock) -> None:
    nodes = [node(f"n{i}", i) for i in range(3)]
    async with cluster(nodes) as (addrs, _):
        for n in nodes[1:]:
            n.join([addrs[0]])
        await wait(nodes[0], lambda: all(len(alive_names(n)) == 3 for n in nodes))
        with trio.fail_after(5):
            await nodes[2].leave()
        left = MemberState.LEFT
        await wait(nodes[0], lambda: all(n.core.state_of("n2") is left for n in nodes[:2]))


async def test_node_without_the_key_cannot_join(autojump_clock: trio.testing.MockClock) -> None:
    key = parse_key(generate_key())
    members = [node(f"n{i}", i, keyring=Keyring.of(key)) for i in range(2)]
    plain = node("plain", 7)
    foreign = node("foreign", 8, keyring=Keyring.of(parse_key(generate_key())))
    async with cluster([*members, plain, foreign]) as (addrs, _):
        members[1].join([addrs[0]])
        plain.join([addrs[0]])
        foreign.join([addrs[0]])
        await wait(members[0], lambda: all(alive_names(n) == {"n0", "n1"} for n in members))
        await trio.sleep(10)
        assert alive_names(members[0]) == {"n0", "n1"}
        assert not plain.core.joined and not foreign.core.joined
        assert members[0].stats.unsealed > 0


async def test_tampered_replayed_and_malformed_datagrams_are_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    key = parse_key(generate_key())
    sealed_node = node("sealed", 1, keyring=Keyring.of(key))
    plain_node = node("plain", 2)
    async with cluster([sealed_node, plain_node]) as (addrs, _):
        ghost = Alive(5, "ghost", ("127.0.0.1", 9), {"role": "x"})
        datagram = Keyring.of(key).seal(encode_packet((ghost,)))
        tampered = bytearray(datagram)
        tampered[-20] ^= 1
        with trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            to_sealed = (addrs[0].host, addrs[0].port)
            to_plain = (addrs[1].host, addrs[1].port)
            await sock.sendto(bytes(tampered), to_sealed)
            await sock.sendto(encode_packet((ghost,)), to_sealed)
            await wait(sealed_node, lambda: sealed_node.stats.unsealed == 2)
            assert sealed_node.core.member("ghost") is None
            await sock.sendto(datagram, to_sealed)
            await wait(sealed_node, lambda: sealed_node.core.member("ghost") is not None)
            await sock.sendto(datagram, to_sealed)
            await wait(sealed_node, lambda: sealed_node.stats.replayed == 1)
            await sock.sendto(b"\x01\xc1garbage", to_plain)
            await sock.sendto(b"\x01" + b"\x90" * 1500, to_plain)
            stats = plain_node.stats
            await wait(plain_node, lambda: stats.malformed == 1 and stats.oversize == 1)


async def test_key_rotation_keeps_the_cluster_whole(autojump_clock: trio.testing.MockClock) -> None:
    old, new = parse_key(generate_key()), parse_key(generate_key())
    rings = [Keyring.of(old) for _ in range(3)]
    nodes = [node(f"n{i}", i, keyring=rings[i]) for i in range(3)]
    async with cluster(nodes) as (addrs, _):
        for n in nodes[1:]:
            n.join([addrs[0]])
        names = {"n0", "n1", "n2"}
        await wait(nodes[0], lambda: all(alive_names(n) == names for n in nodes))
        for step in ("install", "use", "remove"):
            for ring in rings:
                if step == "install":
                    ring.install(new)
                elif step == "use":
                    ring.use(new)
                else:
                    ring.remove(old)
                await trio.sleep(0.3)
            await trio.sleep(5)
            assert all(alive_names(n) == names for n in nodes), step
        assert all(
            m.state is MemberState.ALIVE and m.incarnation == 1
            for n in nodes for m in n.members()
        ), "nobody was suspected during the rotation"
        late = node("n3", 3, keyring=Keyring.of(new))
        addr = await _start(late, _)
        assert addr.port
        late.join([addrs[1]])
        await wait(nodes[0], lambda: all(len(alive_names(n)) == 4 for n in [*nodes, late]))


async def _start(n: GossipNode, nursery: trio.Nursery) -> HostPort:
    addr: HostPort = await nursery.start(n.run)
    return addr
