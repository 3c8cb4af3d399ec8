"""Peer timing under MockClock, with in-memory streams in place of TCP: the reconnect backoff
follows the seeded schedule, calls time out, and a lost connection fails calls in flight."""

from __future__ import annotations

import random

import attrs
import pytest
import trio
import trio.testing

from dkron_trio.config import HostPort
from dkron_trio.rpc.backoff import Backoff
from dkron_trio.rpc.config import RpcConfig
from dkron_trio.rpc.counters import Metric
from dkron_trio.rpc.errors import RpcTimeout, RpcUnavailable
from dkron_trio.rpc.peer import Peer
from dkron_trio.rpc.server import RpcServer
from tests.rpc.helpers import echo

CONFIG = RpcConfig(backoff_initial=0.1, backoff_max=2.0, backoff_jitter=0.5, call_timeout=30.0)
ADDRESS = HostPort("node-b", 6868)


@attrs.define
class FlakyDialer:
    """Refuses the first `failures` dials, then connects to `server` through memory streams."""

    server: RpcServer
    nursery: trio.Nursery
    failures: int
    attempts: list[float] = attrs.field(factory=list)
    streams: list[trio.abc.Stream] = attrs.field(factory=list)

    async def __call__(self, address: HostPort) -> trio.abc.Stream:
        assert address == ADDRESS
        self.attempts.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        if len(self.attempts) <= self.failures:
            raise OSError("connection refused")
        client, server_side = trio.testing.memory_stream_pair()
        self.streams.append(server_side)
        self.nursery.start_soon(self.server.serve_stream, server_side)
        return client


async def test_reconnect_delays_follow_the_seeded_backoff(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = RpcServer(CONFIG)
    server.on_request("echo", echo)
    dialer = FlakyDialer(server, nursery, failures=6)
    peer = Peer(ADDRESS, CONFIG, random.Random(42), dialer=dialer)
    await nursery.start(peer.run)
    assert await peer.call("echo", b"hi") == b"hi"
    expected = Backoff(CONFIG, random.Random(42))
    gaps = [b - a for a, b in zip(dialer.attempts, dialer.attempts[1:], strict=False)]
    assert gaps == pytest.approx([expected.next_delay() for _ in range(6)])
    assert peer.counters.get(Metric.CONNECT_FAILURES) == 6
    assert max(gaps) <= CONFIG.backoff_max


async def test_idle_peer_does_not_dial(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    dialer = FlakyDialer(RpcServer(CONFIG), nursery, failures=0)
    peer = Peer(ADDRESS, CONFIG, random.Random(1), dialer=dialer)
    await nursery.start(peer.run)
    await trio.sleep(60)
    assert dialer.attempts == []


async def test_call_times_out_when_nobody_answers(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = RpcServer(CONFIG)

    async def never(body: bytes) -> bytes:
        await trio.sleep_forever()
        raise AssertionError

    server.on_request("never", never)
    peer = Peer(ADDRESS, CONFIG, random.Random(1), dialer=FlakyDialer(server, nursery, 0))
    await nursery.start(peer.run)
    start = trio.current_time()
    with pytest.raises(RpcTimeout):
        await peer.call("never", b"")
    assert trio.current_time() - start == pytest.approx(CONFIG.call_timeout)
    assert peer.counters.get(Metric.CALL_TIMEOUTS) == 1


async def test_lost_connection_fails_calls_in_flight_then_reconnects(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    server = RpcServer(CONFIG)
    entered = trio.Event()

    async def hang(body: bytes) -> bytes:
        entered.set()
        await trio.sleep_forever()
        raise AssertionError

    server.on_request("hang", hang)
    server.on_request("echo", echo)
    dialer = FlakyDialer(server, nursery, failures=0)
    peer = Peer(ADDRESS, CONFIG, random.Random(1), dialer=dialer)
    await nursery.start(peer.run)

    async def break_link() -> None:
        await entered.wait()
        await dialer.streams[0].aclose()

    nursery.start_soon(break_link)
    with pytest.raises(RpcUnavailable):
        await peer.call("hang", b"")
    assert await peer.call("echo", b"back") == b"back"
    assert len(dialer.attempts) == 2
    assert peer.counters.get(Metric.CALLS_UNAVAILABLE) == 1
    assert peer.counters.get(Metric.CONNECTIONS_LOST) == 1
