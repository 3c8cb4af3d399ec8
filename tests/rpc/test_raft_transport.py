"""Three in-process Raft endpoints exchanging messages over RPC on 127.0.0.1."""

from __future__ import annotations

import random

import attrs
import trio

from dkron_trio.config import HostPort
from dkron_trio.raft.codec import encode_message
from dkron_trio.raft.transport import Transport
from dkron_trio.raft.types import Entry, Message, MessageType
from dkron_trio.rpc.counters import Metric
from dkron_trio.rpc.raft_transport import RAFT_KIND, RaftRpcTransport
from dkron_trio.rpc.server import RpcServer
from tests.rpc.helpers import DEADLINE, FAST, start_peer, start_server, wait_for

IDS = (1, 2, 3)


@attrs.frozen
class Endpoint:
    transport: RaftRpcTransport
    server: RpcServer
    address: HostPort


async def _cluster(nursery: trio.Nursery) -> dict[int, Endpoint]:
    endpoints: dict[int, Endpoint] = {}
    for node_id in IDS:
        server = RpcServer(FAST)
        transport = RaftRpcTransport(node_id, server, {}, FAST, random.Random(node_id))
        address = await start_server(nursery, server)
        endpoints[node_id] = Endpoint(transport, server, address)
    for endpoint in endpoints.values():
        for node_id, other in endpoints.items():
            endpoint.transport.set_address(node_id, other.address)
        await nursery.start(endpoint.transport.run)
    return endpoints


def _append(sender: int, to: int, n: int) -> Message:
    return Message(
        MessageType.APPEND,
        to=to,
        sender=sender,
        term=3,
        index=n,
        log_term=2,
        commit=n,
        entries=(Entry(3, n + 1, data=f"{sender}->{to}#{n}".encode()),),
    )


async def _receive(transport: Transport, count: int) -> list[Message]:
    got: list[Message] = []
    with trio.fail_after(DEADLINE):
        while len(got) < count:
            got.append(await transport.inbound.receive())
    return got


async def test_three_endpoints_exchange_messages_in_order(nursery: trio.Nursery) -> None:
    endpoints = await _cluster(nursery)
    per_link = 50
    for sender in IDS:
        endpoints[sender].transport.send(
            [_append(sender, to, n) for n in range(per_link) for to in IDS if to != sender]
        )
    for node_id in IDS:
        got = await _receive(endpoints[node_id].transport, 2 * per_link)
        for sender in IDS:
            if sender != node_id:
                from_sender = [m for m in got if m.sender == sender]
                assert from_sender == [_append(sender, node_id, n) for n in range(per_link)]


async def test_unknown_peers_bad_bodies_and_misaddressed_messages_are_counted(
    nursery: trio.Nursery,
) -> None:
    endpoints = await _cluster(nursery)
    one = endpoints[1]
    one.transport.send([_append(1, 9, 0)])
    assert one.server.counters.get(Metric.RAFT_UNKNOWN_PEER) == 1
    raw = await start_peer(nursery, one.address)
    raw.send_nowait(RAFT_KIND, b"\x93not raft")
    raw.send_nowait(RAFT_KIND, encode_message(_append(2, 3, 0)))
    raw.send_nowait(RAFT_KIND, encode_message(_append(2, 1, 7)))
    assert await one.transport.inbound.receive() == _append(2, 1, 7)
    assert one.server.counters.get(Metric.RAFT_UNDECODABLE) == 1
    assert one.server.counters.get(Metric.RAFT_MISADDRESSED) == 1
    assert raw.counters.get(Metric.CONNECTIONS_LOST) == 0


async def test_messages_to_self_and_before_run_are_delivered(nursery: trio.Nursery) -> None:
    server = RpcServer(FAST)
    address = await start_server(nursery, server)
    transport = RaftRpcTransport(1, server, {1: address}, FAST, random.Random(1))
    transport.send([_append(1, 1, 0)])
    assert await _receive(transport, 1) == [_append(1, 1, 0)]
    other_server = RpcServer(FAST)
    other = RaftRpcTransport(2, other_server, {}, FAST, random.Random(2))
    transport.set_address(2, await start_server(nursery, other_server))
    transport.send([_append(1, 2, 1)])
    await nursery.start(transport.run)
    assert await _receive(other, 1) == [_append(1, 2, 1)]


async def test_full_inbox_drops_and_counts(nursery: trio.Nursery) -> None:
    endpoints = await _cluster(nursery)
    small = RaftRpcTransport(4, RpcServer(FAST), {}, FAST, random.Random(4), inbound_buffer=2)
    small.send([_append(4, 4, n) for n in range(5)])
    assert small.counters.get(Metric.RAFT_INBOUND_DROPPED) == 3
    endpoints[1].transport.remove(2)
    endpoints[1].transport.send([_append(1, 2, 0)])
    assert endpoints[1].server.counters.get(Metric.RAFT_UNKNOWN_PEER) == 1


async def test_a_node_whose_listener_is_gone_is_reported_down(nursery: trio.Nursery) -> None:
    down: list[int] = []
    server = RpcServer(FAST)
    transport = RaftRpcTransport(2, server, {}, FAST, random.Random(2))
    transport.on_peer_down = down.append
    await start_server(nursery, server)
    await nursery.start(transport.run)
    arrived: list[bytes] = []

    async def receive(body: bytes) -> None:
        arrived.append(body)

    doomed = RpcServer(FAST)
    doomed.on_message(RAFT_KIND, receive)
    async with trio.open_nursery() as process:
        transport.set_address(1, await start_server(process, doomed))
        transport.send([_append(2, 1, 0)])
        await wait_for(lambda: len(arrived) == 1)
        assert down == []  # connected and alive
        process.cancel_scope.cancel()  # the listener and its connections close, as at exit
    await wait_for(lambda: down == [1])


async def test_heartbeats_and_votes_overtake_queued_entries(nursery: trio.Nursery) -> None:
    """Messages queued while the sender is not running yet: the heartbeat and the vote sent
    last arrive first, the entries after them in their order."""
    receiver_server = RpcServer(FAST)
    receiver = RaftRpcTransport(2, receiver_server, {}, FAST, random.Random(2))
    address = await start_server(nursery, receiver_server)
    sender = RaftRpcTransport(1, RpcServer(FAST), {2: address}, FAST, random.Random(1))
    appends = [_append(1, 2, n) for n in range(20)]
    beat = Message(MessageType.HEARTBEAT, to=2, sender=1, term=3, commit=5)
    vote = Message(MessageType.VOTE, to=2, sender=1, term=4, index=9, log_term=3)
    sender.send([*appends, beat, vote])
    await nursery.start(sender.run)
    got = await _receive(receiver, len(appends) + 2)
    assert got == [beat, vote, *appends]
