"""Redis keeps no garbage: a replaced snapshot's chunks and the compacted entries are gone."""

from collections.abc import Iterator

import pytest
import redis
import trio

from dkron_trio.backends.redis import open_driver
from tests.backends import launch_redis


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    with launch_redis.running(tmp_path_factory.mktemp("redis")) as found:
        yield found


def _keys(machines: list[str], pattern: str) -> list[bytes]:
    host, port = machines[0].rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port))
    try:
        return sorted(k for k in client.keys(pattern) if isinstance(k, bytes))
    finally:
        client.close()


def _fields(machines: list[str], name: str) -> list[bytes]:
    host, port = machines[0].rsplit(":", 1)
    client = redis.Redis(host=host, port=int(port))
    try:
        return sorted(k for k in client.hkeys(name) if isinstance(k, bytes))
    finally:
        client.close()


async def test_a_replaced_snapshot_and_the_compacted_entries_are_deleted(
    machines: list[str],
) -> None:
    driver = open_driver(machines, "garbage")
    for n in range(5):
        await driver.append(b"e%d" % n)
    await driver.save_snapshot(2, b"x" * (2 * 1024 * 1024))  # 4 chunks
    await driver.save_snapshot(4, b"small")
    chunks = await trio.to_thread.run_sync(_keys, machines, "{garbage}:snapshot:*")
    assert [k.rsplit(b":", 3)[1] for k in chunks] == [b"4"]
    assert await trio.to_thread.run_sync(_fields, machines, "{garbage}:log") == [b"5"]
    await driver.aclose()


def test_open_driver_names_a_bad_machine_or_namespace() -> None:
    with pytest.raises(ValueError, match="backend-machines"):
        open_driver([], "ns")
    with pytest.raises(ValueError, match="not host:port"):
        open_driver(["localhost"], "ns")
    with pytest.raises(ValueError, match="namespace"):
        open_driver(["127.0.0.1:1"], "")
