"""ZooKeeper's limits: an entry above a znode's 1 MB is kept in parts, dropped with it;
no chunk of a replaced snapshot is left."""

from collections.abc import Iterator

import pytest
import trio
from kazoo.client import KazooClient

from dkron_trio.backends.zookeeper import open_driver
from dkron_trio.store.backend import Entry, Fenced
from tests.backends import launch_zookeeper

SLACK = 10.0


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    with launch_zookeeper.running(tmp_path_factory.mktemp("zookeeper")) as found:
        yield found


def _parts_left(machines: list[str], namespace: str, kind: str = "parts") -> int:
    client = KazooClient(hosts=machines[0])
    client.start(timeout=SLACK)
    try:
        return len(client.get_children(f"/{namespace}/{kind}"))
    finally:
        client.stop()
        client.close()


async def test_an_entry_above_the_znode_limit_is_kept_in_parts_and_compacted_with_them(
    machines: list[str],
) -> None:
    driver = open_driver(machines, "large")
    large = bytes(range(256)) * (6 * 1024)  # 1.5 MiB, above ZooKeeper's 1 MB
    assert await driver.append(large) == 1
    assert await driver.append(b"small") == 2
    assert await driver.entries(0, 10) == [Entry(1, large), Entry(2, b"small")]
    assert await trio.to_thread.run_sync(_parts_left, machines, "large") == 3
    await driver.save_snapshot(1, large)  # 3 chunks
    await driver.save_snapshot(2, b"image")
    assert await trio.to_thread.run_sync(_parts_left, machines, "large") == 0
    assert await trio.to_thread.run_sync(_parts_left, machines, "large", "chunks") == 1
    assert await driver.load_snapshot() == (2, b"image")
    await driver.aclose()


async def test_a_fenced_large_entry_leaves_no_parts(machines: list[str]) -> None:
    a, b = open_driver(machines, "fenced"), open_driver(machines, "fenced")
    with trio.fail_after(SLACK):
        first = await a.campaign("a", 30)
    await a.resign(first)
    with trio.fail_after(SLACK):
        await b.campaign("b", 30)
    with pytest.raises(Fenced):
        await a.append(b"x" * (2 * 1024 * 1024), fence=first)
    assert await trio.to_thread.run_sync(_parts_left, machines, "fenced") == 0
    assert await b.entries(0, 10) == []
    await a.aclose()
    await b.aclose()


def test_open_driver_names_a_bad_machine_or_namespace() -> None:
    with pytest.raises(ValueError, match="backend-machines"):
        open_driver([], "ns")
    with pytest.raises(ValueError, match="namespace"):
        open_driver(["127.0.0.1:1"], "/ns")
