"""RpcServer and Peer over real TCP sockets on 127.0.0.1 (free ports, waits with deadlines)."""

from __future__ import annotations

import random
import struct

import attrs
import pytest
import trio

from dkron_trio.rpc.config import Overflow
from dkron_trio.rpc.counters import Metric
from dkron_trio.rpc.errors import RemoteError
from dkron_trio.rpc.framing import Frame, FrameError, FrameType, encode_frame
from dkron_trio.rpc.peer import Peer
from dkron_trio.rpc.server import RpcServer
from tests.rpc.helpers import DEADLINE, FAST, echo, start_peer, start_server, wait_for


async def test_request_response_round_trip(nursery: trio.Nursery) -> None:
    server = RpcServer(FAST)
    server.on_request("echo", echo)
    peer = await start_peer(nursery, await start_server(nursery, server))
    assert await peer.call("echo", b"hello") == b"hello"
    assert await peer.call("echo", b"") == b""
    assert server.counters.get(Metric.FRAMES_IN) == 2
    assert peer.counters.get(Metric.CONNECTS) == 1


async def test_one_way_messages_arrive_in_order(nursery: trio.Nursery) -> None:
    got: list[bytes] = []
    server = RpcServer(FAST)

    async def collect(body: bytes) -> None:
        got.append(body)

    server.on_message("note", collect)
    peer = await start_peer(nursery, await start_server(nursery, server))
    sent = [str(i).encode() for i in range(500)]
    for body in sent:
        assert peer.send_nowait("note", body)
    await wait_for(lambda: len(got) == len(sent))
    assert got == sent


async def test_concurrent_calls_run_concurrently(nursery: trio.Nursery) -> None:
    n = 64
    arrived = 0
    all_in = trio.Event()
    server = RpcServer(FAST)

    async def gate(body: bytes) -> bytes:
        nonlocal arrived
        arrived += 1
        if arrived == n:
            all_in.set()
        await all_in.wait()
        return body[::-1]

    server.on_request("gate", gate)
    peer = await start_peer(nursery, await start_server(nursery, server))
    results: dict[int, bytes] = {}

    async def one(i: int) -> None:
        results[i] = await peer.call("gate", f"call-{i}".encode())

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as calls:
            for i in range(n):
                calls.start_soon(one, i)
    assert results == {i: f"call-{i}".encode()[::-1] for i in range(n)}


async def test_handler_errors_and_unknown_kinds_are_remote_errors(nursery: trio.Nursery) -> None:
    server = RpcServer(FAST)

    async def broken(body: bytes) -> bytes:
        raise KeyError("no such job")

    async def huge(body: bytes) -> bytes:
        return b"x" * (FAST.max_frame_size + 1)

    server.on_request("broken", broken)
    server.on_request("huge", huge)
    peer = await start_peer(nursery, await start_server(nursery, server))
    with pytest.raises(RemoteError, match="KeyError: 'no such job'"):
        await peer.call("broken", b"")
    with pytest.raises(RemoteError, match="no handler for kind 'nope'"):
        await peer.call("nope", b"")
    with pytest.raises(RemoteError, match="exceeds limit"):
        await peer.call("huge", b"")
    assert peer.send_nowait("nope", b"dropped")
    await wait_for(lambda: server.counters.get(Metric.UNKNOWN_KIND) == 2)
    assert server.counters.get(Metric.HANDLER_ERRORS) == 1
    assert peer.counters.get(Metric.CONNECTS) == 1, "errors do not cost the connection"


async def test_peer_reconnects_after_the_listener_restarts(nursery: trio.Nursery) -> None:
    server = RpcServer(FAST)
    server.on_request("echo", echo)
    async with trio.open_nursery() as first:
        address = await start_server(first, server)
        peer = await start_peer(nursery, address)
        assert await peer.call("echo", b"1") == b"1"
        first.cancel_scope.cancel()
    await wait_for(lambda: not peer.connected)

    got: list[bytes] = []

    async def collect(body: bytes) -> None:
        got.append(body)

    restarted = RpcServer(FAST)
    restarted.on_request("echo", echo)
    restarted.on_message("note", collect)
    assert peer.send_nowait("note", b"queued while down")
    await wait_for(lambda: peer.counters.get(Metric.CONNECT_FAILURES) >= 1)
    port: int = await nursery.start(restarted.run, address)
    assert port == address.port
    assert await peer.call("echo", b"2") == b"2"
    await wait_for(lambda: got == [b"queued while down"])
    assert peer.counters.get(Metric.CONNECTS) == 2


async def _raw_exchange(address: object, data: bytes) -> bytes:
    """Write raw bytes to the listener and read until it closes the connection."""
    assert isinstance(address, tuple)
    stream = await trio.open_tcp_stream(*address)
    received = b""
    with trio.fail_after(DEADLINE):
        await stream.send_all(data)
        try:
            while chunk := await stream.receive_some(4096):
                received += chunk
        except trio.BrokenResourceError:
            pass
    await stream.aclose()
    return received


async def test_oversize_frame_is_counted_and_closes_only_that_connection(
    nursery: trio.Nursery,
) -> None:
    config = attrs.evolve(FAST, max_frame_size=1024)
    server = RpcServer(config)
    server.on_request("echo", echo)
    address = await start_server(nursery, server)
    peer = await start_peer(nursery, address, config)
    assert await peer.call("echo", b"before") == b"before"
    assert await _raw_exchange((address.host, address.port), struct.pack(">I", 1025)) == b""
    assert server.counters.get(Metric.OVERSIZE_DROPPED) == 1
    assert await peer.call("echo", b"after") == b"after"
    with pytest.raises(FrameError, match="exceeds limit"):
        peer.send_nowait("echo", b"x" * 1025)


async def test_garbage_is_counted_and_closes_only_that_connection(nursery: trio.Nursery) -> None:
    server = RpcServer(FAST)
    server.on_request("echo", echo)
    address = await start_server(nursery, server)
    peer = await start_peer(nursery, address)
    request = encode_frame(Frame(FrameType.REQUEST, "echo", 1, b"ok"), FAST.max_frame_size)
    reply = encode_frame(Frame(FrameType.RESPONSE, "", 1, b"ok"), FAST.max_frame_size)
    stream = await trio.open_tcp_stream(address.host, address.port)
    with trio.fail_after(DEADLINE):
        await stream.send_all(request)
        received = b""
        while len(received) < len(reply):
            received += await stream.receive_some(4096)
        assert received == reply
    assert await _raw_exchange((address.host, address.port), b"\x00\x00\x00\x05hello") == b""
    assert server.counters.get(Metric.MALFORMED_DROPPED) == 1
    misdirected = encode_frame(Frame(FrameType.RESPONSE, "", 1, b""), FAST.max_frame_size)
    assert await _raw_exchange((address.host, address.port), misdirected) == b""
    assert server.counters.get(Metric.MALFORMED_DROPPED) == 2
    with trio.fail_after(DEADLINE):
        await stream.send_all(request)
        assert await stream.receive_some(4096) == reply
    await stream.aclose()
    assert await peer.call("echo", b"still serving") == b"still serving"


async def test_cancelled_call_leaves_the_connection_usable(nursery: trio.Nursery) -> None:
    release = trio.Event()
    started = trio.Event()
    server = RpcServer(FAST)

    async def slow(body: bytes) -> bytes:
        started.set()
        await release.wait()
        return body

    server.on_request("slow", slow)
    server.on_request("echo", echo)
    peer = await start_peer(nursery, await start_server(nursery, server))
    async with trio.open_nursery() as callers:
        callers.start_soon(peer.call, "slow", b"abandoned")
        with trio.fail_after(DEADLINE):
            await started.wait()
        callers.cancel_scope.cancel()
    assert await peer.call("echo", b"next") == b"next"
    release.set()
    await wait_for(lambda: peer.counters.get(Metric.LATE_REPLIES) == 1)
    assert await peer.call("echo", b"again") == b"again"


async def test_call_cancelled_before_connecting_is_never_sent(nursery: trio.Nursery) -> None:
    server = RpcServer(FAST)
    server.on_request("echo", echo)
    address = await start_server(nursery, server)
    peer = Peer(address, FAST, random.Random(1))
    with trio.move_on_after(0):
        await peer.call("echo", b"never")
    await nursery.start(peer.run)
    assert await peer.call("echo", b"sent") == b"sent"
    assert server.counters.get(Metric.FRAMES_IN) == 1


async def test_drop_oldest_keeps_the_newest_frames(nursery: trio.Nursery) -> None:
    got: list[bytes] = []
    server = RpcServer(FAST)

    async def collect(body: bytes) -> None:
        got.append(body)

    server.on_message("note", collect)
    address = await start_server(nursery, server)
    config = attrs.evolve(FAST, queue_size=4, overflow=Overflow.DROP_OLDEST)
    peer = Peer(address, config, random.Random(1))
    for i in range(10):
        assert peer.send_nowait("note", bytes([i]))
    assert peer.queued == 4
    assert peer.counters.get(Metric.QUEUE_DROPPED) == 6
    await nursery.start(peer.run)
    await wait_for(lambda: len(got) == 4)
    assert got == [bytes([i]) for i in range(6, 10)]


async def test_block_policy_holds_the_producer_until_there_is_room(nursery: trio.Nursery) -> None:
    got: list[bytes] = []
    server = RpcServer(FAST)

    async def collect(body: bytes) -> None:
        got.append(body)

    server.on_message("note", collect)
    address = await start_server(nursery, server)
    config = attrs.evolve(FAST, queue_size=2, overflow=Overflow.BLOCK)
    peer = Peer(address, config, random.Random(1))
    assert peer.send_nowait("note", b"0")
    assert peer.send_nowait("note", b"1")
    assert not peer.send_nowait("note", b"refused")
    produced: list[int] = []

    async def producer() -> None:
        for i in range(2, 50):
            await peer.send("note", str(i).encode())
            produced.append(i)

    nursery.start_soon(producer)
    await trio.testing.wait_all_tasks_blocked()
    assert produced == []
    assert peer.queued == 2
    await nursery.start(peer.run)
    await wait_for(lambda: len(got) == 50)
    assert got == [str(i).encode() for i in range(50)]
    assert peer.counters.get(Metric.QUEUE_DROPPED) == 0
