"""The command log and leadership lease in DynamoDB (boto3's blocking client, in threads).

One table (`TABLE`) keyed by (ns, key); a namespace is one partition. Only single-item
conditional writes are used (no TransactWriteItems: dynalite, the server the tests run,
has none), with one item, ``head``, as the point every write meets:

- ``head`` holds the last index and the lease (holder, fence, a renewal counter). An append
  first puts ``log/<n + 1>`` if absent, marked with a random token and the fence it was
  written under, then advances ``head`` from n to n + 1 on the condition that (with a fence)
  the lease is still that one. Entries past ``head`` are invisible to readers; the fence is
  thus checked in the same write that commits the entry.
- An appender that finds an uncommitted entry at n + 1 (its writer crashed or is slow)
  settles it: commits it when it was unfenced or its fence is still current, else deletes
  it (a fence never comes back, so it can never commit). A writer whose advance failed
  reads its entry back to learn whether a helper committed it.
- The lease expires without comparing clocks between machines: the holder renews by
  incrementing the counter; a candidate takes the lease (fence + 1) only after it has seen
  the counter unchanged for the lease's ttl by its own monotonic clock, with a write
  conditioned on that counter value (`LeaseWatch`). The holder stops leading 2/3 ttl after
  its last successful renewal (the leadership loop's rule), before any candidate can take
  over.
- Snapshots, and entries above `INLINE`, are chunks of `CHUNK` bytes (the item limit is
  400 KB), written before the item that refers to them.

The endpoint is always ``machines[0]``; the table and the client: `dynamodb_table`.
"""

import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs
import trio
from botocore.exceptions import BotoCoreError, ClientError

from dkron_trio.backends.dynamodb_lease import LeaseWatch
from dkron_trio.backends.dynamodb_table import (
    HEAD,
    INLINE,
    SNAPSHOT,
    TABLE,
    Head,
    chunk_key,
    data_of,
    endpoint_url,
    entry_key,
    failed_condition,
    head_of,
    make_client,
    number,
    number_of,
    part_key,
    split,
    string,
    with_data,
)
from dkron_trio.store.backend import BackendError, Entry, Fenced, Lease, LogDriver

T = TypeVar("T")

POLL = 0.05
"""Seconds between looks at the head while waiting for entries or a lease."""
DELETE_BATCH = 25
"""BatchWriteItem's most requests per call."""


@attrs.define(eq=False)
class DynamoLogDriver:
    """One server's connection; the client is made on first use (no I/O before)."""

    _endpoint: str
    _namespace: str
    _client: Any = None
    _closed: bool = False
    _lock: threading.Lock = attrs.field(factory=threading.Lock)
    _appending: trio.Lock = attrs.field(factory=trio.Lock)
    """One append of this process at a time: concurrent ones would only race on the head
    and settle each other's entries (one table item cannot hold several entries)."""

    def _connect(self) -> Any:
        with self._lock:
            if self._closed:
                raise BackendError("dynamodb driver is closed")
            if self._client is None:
                client = make_client(self._endpoint)
                self._client = client
            return self._client

    async def _call(self, fn: Callable[[Any], T]) -> T:
        def run() -> T:
            try:
                return fn(self._connect())
            except (BotoCoreError, ClientError) as exc:
                raise BackendError(f"dynamodb {self._endpoint}: {exc}") from exc

        return await trio.to_thread.run_sync(run, abandon_on_cancel=True)

    def _key(self, key: str) -> dict[str, Any]:
        return {"ns": string(self._namespace), "key": string(key)}

    def _get(self, client: Any, key: str) -> dict[str, Any] | None:
        reply = client.get_item(TableName=TABLE, Key=self._key(key), ConsistentRead=True)
        item: dict[str, Any] | None = reply.get("Item")
        return item

    def _get_two(
        self, client: Any, first: str, second: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Two items in one request (the tail's every look reads both)."""
        request: dict[str, Any] = {
            TABLE: {"Keys": [self._key(first), self._key(second)], "ConsistentRead": True}
        }
        found: dict[str, dict[str, Any]] = {}
        while request:
            reply = client.batch_get_item(RequestItems=request)
            for item in reply["Responses"].get(TABLE, []):
                found[item["key"]["S"]] = item
            request = reply.get("UnprocessedKeys") or {}
        return found.get(first), found.get(second)

    def _read_head(self, client: Any) -> Head:
        return head_of(self._get(client, HEAD))

    def _advance(self, client: Any, index: int, fence: int) -> bool:
        """Commit entry ``index``: move the head from index - 1, under lease ``fence`` if
        non-zero. False when the head moved or the lease changed."""
        condition = "(idx = :prev OR attribute_not_exists(idx))" if index == 1 else "idx = :prev"
        values = {":prev": number(index - 1), ":next": number(index)}
        if fence:
            condition += " AND attribute_exists(holder) AND fence = :fence"
            values[":fence"] = number(fence)
        try:
            client.update_item(
                TableName=TABLE,
                Key=self._key(HEAD),
                UpdateExpression="SET idx = :next",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if failed_condition(exc):
                return False
            raise
        return True

    def _settle(self, client: Any, index: int) -> None:
        """Entry ``index`` exists past the head: commit it if it still may be, else drop it."""
        head = self._read_head(client)  # read before the entry: see `_advance`'s fence rule
        if head.index >= index:
            return
        entry = self._get(client, entry_key(index))
        if entry is None:
            return
        fence = number_of(entry, "fence")
        alive = not fence or (head.lease is not None and head.lease.fence == fence)
        if alive:
            self._advance(client, index, fence)
            return
        self._delete_entry(client, index, entry["token"]["S"], number_of(entry, "parts"))

    def _delete_entry(self, client: Any, index: int, token: str, parts: int) -> None:
        """Delete entry ``index`` (and its parts) if it is still the one written with
        ``token``."""
        try:
            client.delete_item(
                TableName=TABLE,
                Key=self._key(entry_key(index)),
                ConditionExpression="#t = :token",
                ExpressionAttributeNames={"#t": "token"},
                ExpressionAttributeValues={":token": string(token)},
            )
        except ClientError as exc:
            if not failed_condition(exc):
                raise
            return
        self._delete(client, [part_key(token, i) for i in range(parts)])

    def _entry(self, client: Any, item: dict[str, Any]) -> Entry:
        """The entry an item holds, reading its parts when it was too large for one item."""
        index = int(item["key"]["S"][4:])
        if "parts" not in item:
            return Entry(index, data_of(item))
        token, data = item["token"]["S"], b""
        for i in range(number_of(item, "parts")):
            part = self._get(client, part_key(token, i))
            if part is None:
                raise BackendError(f"entry {index} was compacted meanwhile")
            data += data_of(part)
        return Entry(index, data)

    async def append(self, data: bytes, *, fence: Lease | None = None) -> int:
        token = secrets.token_hex(8)
        parts = split(data) if len(data) > INLINE else []

        def attempt(client: Any) -> int | None:
            head = self._read_head(client)
            if fence is not None and head.lease != fence:
                raise Fenced(f"lease {fence.fence} of {fence.holder} is no longer current")
            index = head.index + 1
            item = {**self._key(entry_key(index)), "token": string(token)}
            item["fence"] = number(0 if fence is None else fence.fence)
            if parts:
                item["parts"] = number(len(parts))
            try:
                client.put_item(
                    TableName=TABLE,
                    Item=item if parts else with_data(item, data),
                    ConditionExpression="attribute_not_exists(#k)",
                    ExpressionAttributeNames={"#k": "key"},
                )
            except ClientError as exc:
                if not failed_condition(exc):
                    raise
                self._settle(client, index)
                return None
            if self._advance(client, index, 0 if fence is None else fence.fence):
                return index
            return self._after_failed_advance(client, index, token, fence)

        def write_parts(client: Any) -> None:
            for i, part in enumerate(parts):
                client.put_item(
                    TableName=TABLE, Item=with_data(self._key(part_key(token, i)), part)
                )

        if parts:
            await self._call(write_parts)
        try:
            async with self._appending:
                while True:
                    index = await self._call(attempt)
                    if index is not None:
                        return index
        except Fenced:
            if parts:
                keys = [part_key(token, i) for i in range(len(parts))]
                await self._call(lambda client: self._delete(client, keys))
            raise

    def _after_failed_advance(
        self, client: Any, index: int, token: str, fence: Lease | None
    ) -> int | None:
        """Our entry's commit failed: a helper committed it, or the lease changed, or (no
        fence) another writer's entry took the place; the index, Fenced, or None to retry."""
        head = self._read_head(client)
        entry = self._get(client, entry_key(index))
        ours = entry is not None and entry["token"]["S"] == token
        if ours and head.index >= index:
            snapshot = self._get(client, SNAPSHOT)
            if snapshot is None or number_of(snapshot, "idx") < index:
                return index
            # Compacted since: committed by a helper, or written after the entry once there
            # was deleted (this writer stalled across a snapshot). Below the snapshot it is
            # dead either way; which of the two happened cannot be told.
            self._delete_entry(client, index, token, number_of(entry or {}, "parts"))
            raise BackendError(f"append at {index} raced a compaction: outcome unknown")
        if fence is not None and head.lease != fence:
            if ours:
                self._settle(client, index)
            raise Fenced(f"lease {fence.fence} of {fence.holder} is no longer current")
        return None

    async def entries(self, after: int, limit: int) -> list[Entry]:
        def read(client: Any) -> list[Entry]:
            snapshot, head = self._get_two(client, SNAPSHOT, HEAD)
            if snapshot is not None and after < number_of(snapshot, "idx"):
                raise BackendError(f"entries after {after} were compacted")
            last = min(head_of(head).index, after + limit)
            if last <= after:
                return []
            found: list[Entry] = []
            request: dict[str, Any] = {
                "TableName": TABLE,
                "ConsistentRead": True,
                "KeyConditionExpression": "ns = :ns AND #k BETWEEN :first AND :last",
                "ExpressionAttributeNames": {"#k": "key"},
                "ExpressionAttributeValues": {
                    ":ns": string(self._namespace),
                    ":first": string(entry_key(after + 1)),
                    ":last": string(entry_key(last)),
                },
            }
            while True:
                reply = client.query(**request)
                found += [self._entry(client, item) for item in reply["Items"]]
                if "LastEvaluatedKey" not in reply:
                    break
                request["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
            if [e.index for e in found] != list(range(after + 1, last + 1)):
                raise BackendError(f"entries after {after} were compacted meanwhile")
            return found

        return await self._call(read)

    async def wait_entries(self, after: int, max_wait: float) -> None:
        with trio.move_on_after(max_wait):
            while True:
                head = await self._call(self._read_head)
                if head.index > after:
                    return
                await trio.sleep(POLL)

    async def save_snapshot(self, index: int, image: bytes) -> None:
        token = secrets.token_hex(8)
        chunks = split(image)

        def write(client: Any) -> None:
            for i, chunk in enumerate(chunks):
                item = {**self._key(chunk_key(index, token, i))}
                client.put_item(TableName=TABLE, Item=with_data(item, chunk))

        def switch(client: Any) -> dict[str, Any] | None:
            """Point the record at the new image; the record replaced, or None if newer."""
            record = {**self._key(SNAPSHOT), "idx": number(index), "token": string(token)}
            record["chunks"] = number(len(chunks))
            while True:
                old = self._get(client, SNAPSHOT)
                if old is not None and number_of(old, "idx") >= index:
                    return None
                if self._read_head(client).index < index:
                    raise BackendError(f"snapshot index {index} is past the log's end")
                condition = "attribute_not_exists(idx)" if old is None else "idx = :old"
                values = None if old is None else {":old": old["idx"]}
                try:
                    client.put_item(
                        TableName=TABLE,
                        Item=record,
                        ConditionExpression=condition,
                        **({} if values is None else {"ExpressionAttributeValues": values}),
                    )
                except ClientError as exc:
                    if failed_condition(exc):
                        continue
                    raise
                return old or {}

        await self._call(write)
        try:
            replaced = await self._call(switch)
        except BackendError:
            await self._call(lambda client: self._drop_chunks(client, index, token, len(chunks)))
            raise
        if replaced is None:
            await self._call(lambda client: self._drop_chunks(client, index, token, len(chunks)))
            return
        old_index = number_of(replaced, "idx")
        await self._call(lambda client: self._drop_entries(client, old_index + 1, index))
        if replaced:
            old_token, count = replaced["token"]["S"], number_of(replaced, "chunks")
            await self._call(lambda client: self._drop_chunks(client, old_index, old_token, count))

    def _drop_entries(self, client: Any, first: int, last: int) -> None:
        """Delete entries ``first``..``last`` and the parts of the large ones."""
        keys = [entry_key(i) for i in range(first, last + 1)]
        request: dict[str, Any] = {
            "TableName": TABLE,
            "ConsistentRead": True,
            "KeyConditionExpression": "ns = :ns AND #k BETWEEN :first AND :last",
            "FilterExpression": "attribute_exists(#p)",
            "ProjectionExpression": "#t, #p",
            "ExpressionAttributeNames": {"#k": "key", "#t": "token", "#p": "parts"},
            "ExpressionAttributeValues": {
                ":ns": string(self._namespace),
                ":first": string(entry_key(first)),
                ":last": string(entry_key(last)),
            },
        }
        while True:
            reply = client.query(**request)
            for item in reply["Items"]:
                token = item["token"]["S"]
                keys += [part_key(token, i) for i in range(number_of(item, "parts"))]
            if "LastEvaluatedKey" not in reply:
                break
            request["ExclusiveStartKey"] = reply["LastEvaluatedKey"]
        self._delete(client, keys)

    def _drop_chunks(self, client: Any, index: int, token: str, count: int) -> None:
        self._delete(client, [chunk_key(index, token, i) for i in range(count)])

    def _delete(self, client: Any, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            requests = [
                {"DeleteRequest": {"Key": self._key(k)}} for k in keys[start : start + DELETE_BATCH]
            ]
            pending: dict[str, Any] = {TABLE: requests}
            while pending:
                reply = client.batch_write_item(RequestItems=pending)
                pending = reply.get("UnprocessedItems") or {}

    async def load_snapshot(self) -> tuple[int, bytes] | None:
        def load(client: Any) -> tuple[int, bytes] | None:
            while True:
                record = self._get(client, SNAPSHOT)
                if record is None:
                    return None
                index, token = number_of(record, "idx"), record["token"]["S"]
                parts = [
                    self._get(client, chunk_key(index, token, i))
                    for i in range(number_of(record, "chunks"))
                ]
                if all(p is not None for p in parts):
                    return index, b"".join(data_of(p) for p in parts if p is not None)
                # A newer snapshot replaced this one and dropped its chunks meanwhile.

        return await self._call(load)

    def _take(self, client: Any, holder: str, ttl: float, seen: Head | None) -> Lease | None:
        """Take the lease if it is free (``seen`` None) or still at ``seen``'s renewal."""
        if seen is None:
            condition = "attribute_not_exists(holder)"
            values: dict[str, Any] = {}
        else:
            condition = "lver = :seen"
            values = {":seen": number(seen.renewals)}
        values.update({":h": string(holder), ":one": number(1), ":zero": number(0)})
        values[":ttl"] = number(_ttl_ms(ttl))
        try:
            reply = client.update_item(
                TableName=TABLE,
                Key=self._key(HEAD),
                UpdateExpression=(
                    "SET holder = :h, lttl = :ttl, fence = if_not_exists(fence, :zero) + :one, "
                    "lver = if_not_exists(lver, :zero) + :one"
                ),
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if failed_condition(exc):
                return None
            raise
        return Lease(holder, number_of(reply["Attributes"], "fence"))

    async def campaign(self, holder: str, ttl: float) -> Lease:
        _ttl_ms(ttl)
        watch = LeaseWatch()
        while True:
            head = await self._call(self._read_head)
            if watch.may_take(head, time.monotonic(), ttl):
                taken = await self._take_async(holder, ttl, watch.watched)
                if taken is not None:
                    return taken
            await trio.sleep(POLL)

    async def _take_async(self, holder: str, ttl: float, seen: Head | None) -> Lease | None:
        return await self._call(lambda client: self._take(client, holder, ttl, seen))

    async def renew(self, lease: Lease, ttl: float) -> bool:
        def renew(client: Any) -> bool:
            try:
                client.update_item(
                    TableName=TABLE,
                    Key=self._key(HEAD),
                    UpdateExpression="SET lver = lver + :one, lttl = :ttl",
                    ConditionExpression="holder = :h AND fence = :fence",
                    ExpressionAttributeValues={
                        ":one": number(1),
                        ":ttl": number(_ttl_ms(ttl)),
                        ":h": string(lease.holder),
                        ":fence": number(lease.fence),
                    },
                )
            except ClientError as exc:
                if failed_condition(exc):
                    return False
                raise
            return True

        return await self._call(renew)

    async def resign(self, lease: Lease) -> None:
        def resign(client: Any) -> None:
            try:
                client.update_item(
                    TableName=TABLE,
                    Key=self._key(HEAD),
                    UpdateExpression="REMOVE holder",
                    ConditionExpression="holder = :h AND fence = :fence",
                    ExpressionAttributeValues={
                        ":h": string(lease.holder),
                        ":fence": number(lease.fence),
                    },
                )
            except ClientError as exc:
                if not failed_condition(exc):
                    raise

        await self._call(resign)

    async def leader(self) -> Lease | None:
        return (await self._call(self._read_head)).lease

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            await trio.to_thread.run_sync(client.close)


def _ttl_ms(ttl: float) -> int:
    if ttl <= 0:
        raise ValueError(f"lease ttl must be positive, got {ttl}")
    return max(1, round(ttl * 1000))


def open_driver(machines: Sequence[str], namespace: str) -> LogDriver:
    """A driver for the DynamoDB endpoint ``machines[0]``, namespace = one partition."""
    if not machines:
        raise ValueError("the dynamodb backend needs backend-machines (host:port or URL)")
    if not namespace:
        raise ValueError("the dynamodb backend needs a non-empty namespace")
    return DynamoLogDriver(endpoint_url(machines[0]), namespace)
