"""DynamoDB's append without transactions: an entry left past the head by a writer that
stalled or died is committed or dropped by the next appender, never skipped or duplicated."""

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import trio

from dkron_trio.backends.dynamodb import open_driver
from dkron_trio.backends.dynamodb_table import TABLE
from dkron_trio.store.backend import Entry, Fenced, Lease, LogDriver
from tests.backends import launch_dynamodb

SLACK = 10.0


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    with launch_dynamodb.running(tmp_path_factory.mktemp("dynamodb")) as found:
        yield found


def _put_stalled(machines: list[str], namespace: str, index: int, data: bytes, fence: int) -> None:
    """What a writer leaves when it dies between putting its entry and advancing the head."""
    client: Any = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    ).client("dynamodb", endpoint_url=f"http://{machines[0]}")
    client.put_item(
        TableName=TABLE,
        Item={
            "ns": {"S": namespace},
            "key": {"S": f"log/{index:020d}"},
            "token": {"S": "dead-writer"},
            "fence": {"N": str(fence)},
            "data": {"B": data},
        },
    )
    client.close()


async def _stall(machines: list[str], namespace: str, index: int, data: bytes, fence: int) -> None:
    await trio.to_thread.run_sync(_put_stalled, machines, namespace, index, data, fence)


async def _opened(machines: list[str], namespace: str) -> LogDriver:
    driver = open_driver(machines, namespace)
    await driver.append(b"first")
    return driver


async def test_an_unfenced_stalled_entry_is_committed_by_the_next_appender(
    machines: list[str],
) -> None:
    driver = await _opened(machines, "unfenced")
    await _stall(machines, "unfenced", 2, b"stalled", 0)
    assert await driver.entries(0, 10) == [Entry(1, b"first")]
    assert await driver.append(b"next") == 3
    assert await driver.entries(0, 10) == [
        Entry(1, b"first"),
        Entry(2, b"stalled"),
        Entry(3, b"next"),
    ]
    await driver.aclose()


async def test_a_stalled_entry_under_a_current_lease_is_committed(machines: list[str]) -> None:
    driver = await _opened(machines, "current")
    with trio.fail_after(SLACK):
        lease = await driver.campaign("a", 30)
    await _stall(machines, "current", 2, b"plan", lease.fence)
    assert await driver.append(b"next") == 3
    assert [e.data for e in await driver.entries(0, 10)] == [b"first", b"plan", b"next"]
    await driver.aclose()


async def test_a_stalled_entry_under_a_resigned_lease_is_dropped(machines: list[str]) -> None:
    driver = await _opened(machines, "resigned")
    with trio.fail_after(SLACK):
        lease = await driver.campaign("a", 30)
    await _stall(machines, "resigned", 2, b"stale plan", lease.fence)
    await driver.resign(lease)
    with trio.fail_after(SLACK):
        second: Lease = await driver.campaign("b", 30)
    assert await driver.append(b"new plan", fence=second) == 2
    assert await driver.entries(0, 10) == [Entry(1, b"first"), Entry(2, b"new plan")]
    await driver.aclose()


def test_open_driver_names_a_bad_machine_or_namespace() -> None:
    with pytest.raises(ValueError, match="backend-machines"):
        open_driver([], "ns")
    with pytest.raises(ValueError, match="not host:port"):
        open_driver(["nonsense"], "ns")
    with pytest.raises(ValueError, match="namespace"):
        open_driver(["127.0.0.1:1"], "")


def _parts_left(machines: list[str], namespace: str, prefix: str = "part/") -> int:
    client: Any = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    ).client("dynamodb", endpoint_url=f"http://{machines[0]}")
    reply = client.query(
        TableName=TABLE,
        KeyConditionExpression="ns = :ns AND begins_with(#k, :part)",
        ExpressionAttributeNames={"#k": "key"},
        ExpressionAttributeValues={":ns": {"S": namespace}, ":part": {"S": prefix}},
    )
    client.close()
    return len(reply["Items"])


async def test_an_entry_above_the_item_limit_is_kept_in_parts_and_compacted_with_them(
    machines: list[str],
) -> None:
    driver = open_driver(machines, "large")
    large = bytes(range(256)) * 4096  # 1 MiB, above DynamoDB's 400 KB item limit
    assert await driver.append(large) == 1
    assert await driver.append(b"small") == 2
    assert await driver.entries(0, 10) == [Entry(1, large), Entry(2, b"small")]
    assert await trio.to_thread.run_sync(_parts_left, machines, "large") > 0
    await driver.save_snapshot(1, large)  # 4 chunks
    await driver.save_snapshot(2, b"image")
    assert await trio.to_thread.run_sync(_parts_left, machines, "large") == 0
    assert await trio.to_thread.run_sync(_parts_left, machines, "large", "chunk/") == 1
    assert await driver.load_snapshot() == (2, b"image")
    await driver.aclose()


async def test_a_fenced_large_entry_leaves_no_parts(machines: list[str]) -> None:
    a, b = open_driver(machines, "fenced-large"), open_driver(machines, "fenced-large")
    with trio.fail_after(SLACK):
        first = await a.campaign("a", 30)
    await a.resign(first)
    with trio.fail_after(SLACK):
        await b.campaign("b", 30)
    with pytest.raises(Fenced):
        await a.append(b"x" * (1024 * 1024), fence=first)
    assert await trio.to_thread.run_sync(_parts_left, machines, "fenced-large") == 0
    assert await b.entries(0, 10) == []
    await a.aclose()
    await b.aclose()
