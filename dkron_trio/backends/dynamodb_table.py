"""DynamoDB's table for the external backend: item keys, attribute encoding, the client.

One table, `TABLE`, keyed by (ns, key): a namespace is one partition. Items: ``head`` (last
index and the lease), ``log/<index>``, ``part/<token>/<n>`` (a large entry's parts),
``snapshot`` and ``chunk/<index>/<token>/<n>`` (the snapshot's chunks).
"""

import contextlib
import functools
import os
import threading
import time
from typing import Any

import attrs
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from dkron_trio.store.backend import BackendError, Lease

TABLE = "dkron-trio"
CHUNK = 300 * 1024
"""Snapshot (and large entry) bytes per item: DynamoDB refuses items above 400 KB."""
INLINE = 350 * 1024
"""An entry up to this size is kept in its log item; a larger one in `CHUNK` parts."""
TIMEOUT = 10.0
"""Seconds a single request may take before the driver reports the backend unreachable."""

HEAD = "head"
SNAPSHOT = "snapshot"


def entry_key(index: int) -> str:
    return f"log/{index:020d}"


def chunk_key(index: int, token: str, i: int) -> str:
    return f"chunk/{index:020d}/{token}/{i:06d}"


def part_key(token: str, i: int) -> str:
    """Part ``i`` of the large entry written with ``token`` (parts are written first)."""
    return f"part/{token}/{i:06d}"


def split(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]


def number(value: int) -> dict[str, str]:
    return {"N": str(value)}


def string(value: str) -> dict[str, str]:
    return {"S": value}


def number_of(item: dict[str, Any], name: str) -> int:
    return int(item[name]["N"]) if name in item else 0


def data_of(item: dict[str, Any]) -> bytes:
    """An item's bytes (absent when empty: some servers refuse an empty binary value)."""
    return bytes(item["data"]["B"]) if "data" in item else b""


def with_data(item: dict[str, Any], data: bytes) -> dict[str, Any]:
    return {**item, "data": {"B": data}} if data else item


def failed_condition(exc: ClientError) -> bool:
    return bool(exc.response["Error"]["Code"] == "ConditionalCheckFailedException")


def endpoint_url(machine: str) -> str:
    if machine.startswith(("http://", "https://")):
        return machine
    host, sep, port = machine.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"backend-machines entry {machine!r} is not host:port or a URL")
    return f"http://{machine}"


@attrs.frozen
class Head:
    index: int
    lease: Lease | None
    renewals: int
    ttl_ms: int


def head_of(item: dict[str, Any] | None) -> Head:
    if item is None:
        return Head(0, None, 0, 0)
    lease = Lease(item["holder"]["S"], number_of(item, "fence")) if "holder" in item else None
    return Head(number_of(item, "idx"), lease, number_of(item, "lver"), number_of(item, "lttl"))


def make_client(endpoint: str) -> Any:
    """A client for ``endpoint`` whose table exists. Credentials and region come from
    AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION, else placeholders (enough for
    a local DynamoDB); nothing is looked up elsewhere (no instance metadata service)."""
    config = Config(
        connect_timeout=TIMEOUT,
        read_timeout=TIMEOUT,
        retries={"max_attempts": 3, "mode": "standard"},
    )
    with _SESSION_LOCK:
        session = _session(
            os.environ.get("AWS_ACCESS_KEY_ID", "dkron-trio"),
            os.environ.get("AWS_SECRET_ACCESS_KEY", "dkron-trio"),
            os.environ.get("AWS_REGION", "us-east-1"),
        )
        client = session.client("dynamodb", endpoint_url=endpoint, config=config)
    _ensure_table(client)
    return client


_SESSION_LOCK = threading.Lock()
"""boto3 sessions are not safe to make clients from in several threads at once."""


@functools.cache
def _session(key_id: str, secret: str, region: str) -> Any:
    """One session per credentials: it loads DynamoDB's API model once (0.2-0.5 s each)."""
    return boto3.session.Session(
        aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=region
    )


def _ensure_table(client: Any) -> None:
    """Create the table when missing (several servers may race: one wins) and wait until
    it is usable."""
    with contextlib.suppress(ClientError):
        if client.describe_table(TableName=TABLE)["Table"]["TableStatus"] == "ACTIVE":
            return
    try:
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[
                {"AttributeName": "ns", "AttributeType": "S"},
                {"AttributeName": "key", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "ns", "KeyType": "HASH"},
                {"AttributeName": "key", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    deadline = time.monotonic() + 60
    while client.describe_table(TableName=TABLE)["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise BackendError(f"dynamodb table {TABLE} did not become active within 60 s")
        time.sleep(0.1)
