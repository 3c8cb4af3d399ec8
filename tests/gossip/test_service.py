"""GossipService: five services on real UDP sockets on 127.0.0.1 (free ports), in virtual time
(MockClock): join with tags, member events, a stopped member detected as failed, a full key
rotation without losing anyone, and tag reloads from the config file."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

from dkron_trio.config import AgentConfig, ConfigError, HostPort
from dkron_trio.gossip.config import KeyringError, parse_key
from dkron_trio.gossip.keyring import generate_key
from dkron_trio.gossip.keyring_query import KeyringUnavailable
from dkron_trio.gossip.messages import KeyOp
from dkron_trio.gossip.service import (
    ClusterEvent,
    ClusterEventKind,
    GossipService,
    reload_tags,
)
from dkron_trio.http.context import MemberStatus

LOCAL = HostPort("127.0.0.1", 0)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def service(i: int, key: str, join: tuple[HostPort, ...] = ()) -> GossipService:
    config = AgentConfig(
        node_name=f"n{i}", bind_addr=LOCAL, rpc_port=6868 + i, encrypt=key, join=join,
        server=i < 3,
    )  # fmt: skip
    return GossipService(config, {"role": "dkron", "index": str(i)}, rng=random.Random(i))


def statuses(s: GossipService) -> dict[str, MemberStatus]:
    return {m.name: m.status for m in s.members()}


async def wait(
    clock: GossipService, predicate: Callable[[], bool], seconds: float = 60.0
) -> None:
    """Wait for a condition, checked after every tick and datagram of the running `clock`."""
    with trio.fail_after(seconds):
        await clock.wait_until(predicate)


async def next_event(events: trio.MemoryReceiveChannel[ClusterEvent]) -> ClusterEvent:
    with trio.fail_after(5):
        return await events.receive()


async def test_five_services_join_detect_a_stop_and_rotate_keys(
    autojump_clock: trio.testing.MockClock,
) -> None:
    old = generate_key()
    new = generate_key()
    alive = {f"n{i}": MemberStatus.ALIVE for i in range(5)}
    async with trio.open_nursery() as nursery:
        first = service(0, old)
        events = first.subscribe()
        seed = await nursery.start(first.run)
        services = [first]
        scopes = []
        for i in range(1, 5):
            s = service(i, old, join=(seed,))
            scope = trio.CancelScope()

            async def run(s: GossipService = s, scope: trio.CancelScope = scope,
                          *, task_status: trio.TaskStatus[HostPort]) -> None:  # fmt: skip
                with scope:
                    await s.run(task_status=task_status)

            await nursery.start(run)
            services.append(s)
            scopes.append(scope)
        await wait(first, lambda: all(statuses(s) == alive for s in services))
        n3 = {m.name: m for m in services[1].members()}["n3"]
        assert n3.tags["index"] == "3" and n3.tags["rpc_addr"] == "127.0.0.1:6871"
        assert n3.addr == "127.0.0.1" and n3.port > 0
        joined = {(await next_event(events)).member.name for _ in range(4)}
        assert joined == {"n1", "n2", "n3", "n4"}

        services[2].set_tags({"role": "dkron", "index": "two"})
        await wait(first, lambda: all(
            {m.name: m for m in s.members()}["n2"].tags["index"] == "two" for s in services
        ))  # fmt: skip
        update = await next_event(events)
        assert (update.kind, update.member.name) == (ClusterEventKind.UPDATE, "n2")

        scopes[3].cancel()  # n4 stops without leaving
        rest = services[:4]
        await wait(first, lambda: all(statuses(s)["n4"] is MemberStatus.FAILED for s in rest), 30)
        failed = await next_event(events)
        assert (failed.kind, failed.member.name) == (ClusterEventKind.FAIL, "n4")

        for op, key in ((KeyOp.INSTALL, new), (KeyOp.USE, new), (KeyOp.REMOVE, old)):
            report = await services[1].keyring(op, parse_key(key))
            assert report.complete, (op, report)
            assert report.answered == ("n0", "n1", "n2", "n3")
        listed = await services[0].keyring(KeyOp.LIST, b"")
        assert listed.keys == {new: 4} and listed.primary_keys == {new: 4}
        await trio.sleep(10)
        assert all(statuses(s) == alive | {"n4": MemberStatus.FAILED} for s in rest)

        with pytest.raises(KeyringError, match="primary"):
            await services[0].keyring(KeyOp.REMOVE, parse_key(new))
        await services[3].leave()
        await wait(first, lambda: statuses(services[0])["n3"] is MemberStatus.LEFT)
        nursery.cancel_scope.cancel()


async def test_keyring_needs_encryption(autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        plain = service(0, "")
        await nursery.start(plain.run)
        with pytest.raises(KeyringUnavailable):
            await plain.keyring(KeyOp.LIST, b"")
        nursery.cancel_scope.cancel()


def test_reload_tags_reads_the_file_and_refuses_reserved_tags(tmp_path: Path) -> None:
    path = tmp_path / "dkron.yml"
    path.write_text("tags:\n  rack: r1\n  weight: 3\n")
    assert reload_tags(path) == {"rack": "r1", "weight": "3"}
    path.write_text("tags:\n  region: eu\n")
    with pytest.raises(ConfigError, match="reserved tag region"):
        reload_tags(path)
    path.write_text("node-name: x\n")
    assert reload_tags(path) == {}
