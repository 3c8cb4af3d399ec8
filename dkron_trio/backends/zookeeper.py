"""The command log and leadership lease in ZooKeeper (kazoo's blocking client, in threads).

Znodes under ``/<namespace>``:

- ``head`` holds the last index; an append is one multi-op transaction: (with a fence)
  check that the leader's election node still exists, set ``head`` to n + k at the version
  read, create ``log/<n + 1>`` .. ``log/<n + k>`` (concurrent appends of one process share
  a transaction: `AppendBatcher`). Two appenders racing on one version: one wins, the other
  reads again, so indices are dense and an entry is visible with its head.
- ``election/n_<sequence>``: ephemeral sequential nodes; the lowest holds the lease and its
  sequence number is the fence (ZooKeeper never hands out a sequence number twice under one
  parent). A fenced append checks that exact node, so once it is gone (resigned, or its
  session expired) the deposed leader's appends are refused in the same transaction.
- ``snapshot`` records the latest image's index and where its chunks are (``chunks/``,
  one znode each below ZooKeeper's 1 MB limit).

The lease's session is its own kazoo client with session timeout = ttl, so a crashed or
frozen server loses it when ZooKeeper expires the session (ZooKeeper's timer: a duration on
the server, no clock compared between machines). kazoo keeps a live session alive by itself,
so a watchdog closes the session when `renew` has not been called for ttl: the lease then
ends ttl after its last renewal, as the interface says. The server clamps session timeouts
to [minSessionTimeout, maxSessionTimeout] (2 and 20 ticks by default): the lease ttl must lie
inside them.
"""

import contextlib
import json
import secrets
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs
import trio
from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    KazooException,
    NodeExistsError,
    NoNodeError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState

from dkron_trio.backends.batching import AppendBatcher
from dkron_trio.store.backend import BackendError, Entry, Fenced, Lease, LogDriver

T = TypeVar("T")

CHUNK = 512 * 1024
"""Snapshot (and large entry) bytes per znode: ZooKeeper refuses requests above about 1 MB."""
INLINE = 512 * 1024
"""An entry up to this size is kept in its log znode; a larger one in `CHUNK` parts."""
_INLINE_TAG = b"\x00"
_PARTS_TAG = b"\x01"
"""First byte of a log znode: the entry follows, or a record naming its parts."""
POLL = 0.05
"""Seconds between looks at the head or the election while waiting."""
TIMEOUT = 10.0
"""Seconds to connect, and the session timeout of the log's (not the lease's) connection."""
BATCH_ENTRIES = 64
"""Concurrent appends of one process written by one multi-op (group commit)."""
DELETE_BATCH = 200
"""Compacted entries deleted per transaction (a multi-op stays far below 1 MB)."""


def _entry_path(root: str, index: int) -> str:
    return f"{root}/log/{index:020d}"


def _election_path(root: str, fence: int) -> str:
    return f"{root}/election/n_{fence:010d}"


def _split(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)] or [b""]


def _parts_record(value: bytes) -> tuple[str, int] | None:
    """(token, count) when a log znode names the parts of a large entry, else None."""
    if not value.startswith(_PARTS_TAG):
        return None
    record = json.loads(value[1:])
    return str(record["token"]), int(record["parts"])


def _sequence(name: str) -> int:
    return int(name.rpartition("_")[2])


@attrs.define(eq=False)
class _Held:
    """The lease this driver holds: its node and the watchdog ending it without renewals."""

    lease: Lease
    path: str
    watchdog: threading.Timer


@attrs.define(eq=False)
class ZooKeeperLogDriver:
    """One server's connection; clients are made on first use (no I/O before)."""

    _hosts: str
    _root: str
    _client: Any = None
    _election: Any = None
    _election_ttl: float = 0.0
    _held: _Held | None = None
    _closed: bool = False
    _lock: threading.Lock = attrs.field(factory=threading.Lock)
    _batcher: AppendBatcher = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._batcher = AppendBatcher(self._append_batch, BATCH_ENTRIES, INLINE)

    def _connect(self) -> Any:
        with self._lock:
            if self._closed:
                raise BackendError("zookeeper driver is closed")
            if self._client is None:
                client = KazooClient(hosts=self._hosts, timeout=TIMEOUT)
                client.start(timeout=TIMEOUT)
                for name in ("log", "election", "chunks", "parts"):
                    client.ensure_path(f"{self._root}/{name}")
                with contextlib.suppress(NodeExistsError):
                    client.create(f"{self._root}/head", b"0")
                self._client = client
            return self._client

    async def _call(self, fn: Callable[[Any], T]) -> T:
        def run() -> T:
            try:
                return fn(self._connect())
            except (KazooException, KazooTimeoutError) as exc:
                raise BackendError(f"zookeeper {self._hosts}: {exc!r}") from exc

        return await trio.to_thread.run_sync(run, abandon_on_cancel=True)

    async def append(self, data: bytes, *, fence: Lease | None = None) -> int:
        return await self._batcher.append(data, fence)

    async def _append_batch(self, batch: Sequence[bytes], fence: Lease | None) -> int:
        """Append ``batch`` in one multi-op; the first entry's index. An entry above
        `INLINE` comes alone (the batcher's byte limit) and goes to parts first."""
        head = f"{self._root}/head"
        token = secrets.token_hex(8)
        parts = _split(batch[0]) if len(batch) == 1 and len(batch[0]) > INLINE else []
        if parts:
            record = json.dumps({"token": token, "parts": len(parts)}).encode()
            stored = [_PARTS_TAG + record]
        else:
            stored = [_INLINE_TAG + data for data in batch]

        def attempt(client: Any) -> int | None:
            value, stat = client.get(head)
            first = int(value) + 1
            tx = client.transaction()
            if fence is not None:
                tx.check(_election_path(self._root, fence.fence), 0)
            tx.set_data(head, str(first + len(stored) - 1).encode(), version=stat.version)
            for offset, data in enumerate(stored):
                tx.create(_entry_path(self._root, first + offset), data)
            results = tx.commit()
            failed = [r for r in results if isinstance(r, Exception)]
            if not failed:
                return first
            if fence is not None and isinstance(results[0], NoNodeError):
                raise Fenced(f"lease {fence.fence} of {fence.holder} is no longer current")
            if any(isinstance(r, BadVersionError) for r in failed):
                return None
            raise BackendError(f"zookeeper append failed: {failed!r}")

        def write_parts(client: Any) -> None:
            for i, part in enumerate(parts):
                client.create(self._part_path(token, i), part)

        if parts:
            await self._call(write_parts)
        try:
            while True:
                index = await self._call(attempt)
                if index is not None:
                    return index
        except Fenced:
            if parts:
                await self._call(lambda client: self._drop_parts(client, token, len(parts)))
            raise

    def _part_path(self, token: str, i: int) -> str:
        return f"{self._root}/parts/{token}-{i:06d}"

    def _drop_parts(self, client: Any, token: str, count: int) -> None:
        for i in range(count):
            with contextlib.suppress(NoNodeError):
                client.delete(self._part_path(token, i))

    def _entry(self, client: Any, index: int, value: bytes) -> Entry:
        """The entry a log znode holds, reading its parts when it was too large for one."""
        parts = _parts_record(value)
        if parts is None:
            return Entry(index, value[1:])
        token, count = parts
        return Entry(
            index, b"".join(client.get(self._part_path(token, i))[0] for i in range(count))
        )

    def _snapshot_meta(self, client: Any) -> tuple[dict[str, Any] | None, int]:
        """The snapshot record and its version (-1 when there is none)."""
        try:
            value, stat = client.get(f"{self._root}/snapshot")
        except NoNodeError:
            return None, -1
        meta: dict[str, Any] = json.loads(value)
        return meta, stat.version

    async def entries(self, after: int, limit: int) -> list[Entry]:
        def read(client: Any) -> list[Entry]:
            meta, _ = self._snapshot_meta(client)
            if meta is not None and after < meta["index"]:
                raise BackendError(f"entries after {after} were compacted")
            last = min(int(client.get(f"{self._root}/head")[0]), after + limit)
            pending = [
                client.get_async(_entry_path(self._root, i)) for i in range(after + 1, last + 1)
            ]
            try:
                return [
                    self._entry(client, after + 1 + i, p.get()[0]) for i, p in enumerate(pending)
                ]
            except NoNodeError as exc:
                raise BackendError(f"entries after {after} were compacted") from exc

        return await self._call(read)

    async def wait_entries(self, after: int, max_wait: float) -> None:
        head = f"{self._root}/head"
        with trio.move_on_after(max_wait):
            while True:
                value, _ = await self._call(lambda client: client.get(head))
                if int(value) > after:
                    return
                await trio.sleep(POLL)

    def _chunk_prefix(self, index: int, token: str) -> str:
        return f"{index:020d}-{token}-"

    async def save_snapshot(self, index: int, image: bytes) -> None:
        token = secrets.token_hex(8)
        chunks = [image[i : i + CHUNK] for i in range(0, len(image), CHUNK)] or [b""]
        prefix = self._chunk_prefix(index, token)

        def write(client: Any) -> None:
            for i, chunk in enumerate(chunks):
                client.create(f"{self._root}/chunks/{prefix}{i:06d}", chunk)

        def switch(client: Any) -> dict[str, Any] | None:
            """Point the record at the new image; the replaced record, or None if newer."""
            record = json.dumps({"index": index, "token": token, "chunks": len(chunks)})
            while True:
                meta, version = self._snapshot_meta(client)
                if meta is not None and meta["index"] >= index:
                    return None
                if int(client.get(f"{self._root}/head")[0]) < index:
                    raise BackendError(f"snapshot index {index} is past the log's end")
                try:
                    if meta is None:
                        client.create(f"{self._root}/snapshot", record.encode())
                        return {"index": 0, "token": ""}
                    client.set(f"{self._root}/snapshot", record.encode(), version=version)
                    return meta
                except (BadVersionError, NodeExistsError):
                    continue

        await self._call(write)
        try:
            replaced = await self._call(switch)
        except BackendError:
            await self._call(lambda client: self._drop_chunks(client, prefix))
            raise
        if replaced is None:
            await self._call(lambda client: self._drop_chunks(client, prefix))
            return
        first = int(replaced["index"]) + 1
        await self._call(lambda client: self._drop_entries(client, first, index))
        if replaced["token"]:
            old = self._chunk_prefix(int(replaced["index"]), str(replaced["token"]))
            await self._call(lambda client: self._drop_chunks(client, old))

    def _drop_entries(self, client: Any, first: int, last: int) -> None:
        """Delete entries ``first``..``last`` and the parts of the large ones."""
        for start in range(first, last + 1, DELETE_BATCH):
            indices = range(start, min(last, start + DELETE_BATCH - 1) + 1)
            pending = [client.get_async(_entry_path(self._root, i)) for i in indices]
            tx = client.transaction()
            for i in indices:
                tx.delete(_entry_path(self._root, i))
            tx.commit()
            for p in pending:
                with contextlib.suppress(NoNodeError):
                    parts = _parts_record(p.get()[0])
                    if parts is not None:
                        self._drop_parts(client, *parts)

    def _drop_chunks(self, client: Any, prefix: str) -> None:
        for name in client.get_children(f"{self._root}/chunks"):
            if name.startswith(prefix):
                with contextlib.suppress(NoNodeError):
                    client.delete(f"{self._root}/chunks/{name}")

    async def load_snapshot(self) -> tuple[int, bytes] | None:
        def load(client: Any) -> tuple[int, bytes] | None:
            while True:
                meta, _ = self._snapshot_meta(client)
                if meta is None:
                    return None
                prefix = self._chunk_prefix(meta["index"], meta["token"])
                try:
                    parts = [
                        client.get(f"{self._root}/chunks/{prefix}{i:06d}")[0]
                        for i in range(meta["chunks"])
                    ]
                except NoNodeError:
                    continue  # a newer snapshot replaced this one and dropped its chunks
                return int(meta["index"]), b"".join(parts)

        return await self._call(load)

    def _election_client(self, ttl: float) -> Any:
        with self._lock:
            if self._closed:
                raise BackendError("zookeeper driver is closed")
            client = self._election
            connected = client is not None and client.state == KazooState.CONNECTED
            if connected and self._election_ttl == ttl:
                return client
            if client is not None:
                client.stop()
                client.close()
            client = KazooClient(hosts=self._hosts, timeout=ttl)
            client.start(timeout=TIMEOUT)
            self._election, self._election_ttl = client, ttl
            return client

    async def campaign(self, holder: str, ttl: float) -> Lease:
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")

        def enter() -> str:
            """Join the election: an ephemeral sequential node in the lease's own session."""
            try:
                client = self._election_client(ttl)
                path: str = client.create(
                    f"{self._root}/election/n_", holder.encode(), ephemeral=True, sequence=True
                )
            except (KazooException, KazooTimeoutError) as exc:
                raise BackendError(f"zookeeper {self._hosts}: {exc!r}") from exc
            return path

        if self._held is not None:
            # A new campaign means that lease is over: end its session so its node (which
            # would stand before the new one) is surely gone.
            self._held.watchdog.cancel()
            self._held = None
            await trio.to_thread.run_sync(self._expire)
        await self._call(lambda client: None)  # the namespace's znodes exist
        path = await trio.to_thread.run_sync(enter)
        mine = path.rpartition("/")[2]
        try:
            while True:
                names = await self._call(
                    lambda client: client.get_children(f"{self._root}/election")
                )
                if mine not in names:
                    raise BackendError("the election node vanished: the session expired")
                if min(names, key=_sequence) == mine:
                    break
                await trio.sleep(POLL)
        except BaseException:
            with trio.CancelScope(shield=True), trio.move_on_after(TIMEOUT):
                await self._call(lambda client: client.delete(path))
            raise
        lease = Lease(holder, _sequence(mine))
        self._held = _Held(lease, path, self._watchdog(ttl))
        return lease

    def _watchdog(self, ttl: float) -> threading.Timer:
        timer = threading.Timer(ttl, self._expire)
        timer.daemon = True
        timer.start()
        return timer

    def _expire(self) -> None:
        """No renewal for ttl: end the session, which deletes the election node."""
        with self._lock:
            client, self._election = self._election, None
        if client is not None:
            client.stop()
            client.close()

    async def renew(self, lease: Lease, ttl: float) -> bool:
        held = self._held
        if held is None or held.lease != lease:
            return False
        client = self._election
        if client is None or client.state == KazooState.LOST:
            return False
        if client.state == KazooState.SUSPENDED:
            # kazoo may still reconnect within the session: unknown, not lost (yet).
            raise BackendError(f"zookeeper {self._hosts}: lease session disconnected")

        def check() -> bool:
            try:
                stat = client.exists(held.path)
            except (KazooException, KazooTimeoutError) as exc:
                raise BackendError(f"zookeeper {self._hosts}: {exc!r}") from exc
            return stat is not None and stat.ephemeralOwner == client.client_id[0]

        if not await trio.to_thread.run_sync(check, abandon_on_cancel=True):
            return False
        held.watchdog.cancel()
        held.watchdog = self._watchdog(ttl)
        return True

    async def resign(self, lease: Lease) -> None:
        held = self._held
        if held is None or held.lease != lease:
            return
        held.watchdog.cancel()
        self._held = None
        client = self._election
        if client is None:
            return

        def delete() -> None:
            """Delete the node; failing that, end its session, which deletes it too."""
            try:
                client.delete(held.path)
            except NoNodeError:
                pass
            except (KazooException, KazooTimeoutError):
                self._expire()

        await trio.to_thread.run_sync(delete, abandon_on_cancel=True)

    async def leader(self) -> Lease | None:
        def read(client: Any) -> Lease | None:
            while True:
                names = client.get_children(f"{self._root}/election")
                if not names:
                    return None
                first = min(names, key=_sequence)
                try:
                    holder = client.get(f"{self._root}/election/{first}")[0]
                except NoNodeError:
                    continue
                return Lease(holder.decode(), _sequence(first))

        return await self._call(read)

    async def aclose(self) -> None:
        with self._lock:
            self._closed = True
            clients = [c for c in (self._client, self._election) if c is not None]
            self._client = self._election = None
        if self._held is not None:
            self._held.watchdog.cancel()
            self._held = None

        def close() -> None:
            for client in clients:
                client.stop()
                client.close()

        await trio.to_thread.run_sync(close)


def open_driver(machines: Sequence[str], namespace: str) -> LogDriver:
    """A driver for the ZooKeeper ensemble ``machines`` keeping znodes under ``/namespace``."""
    if not machines:
        raise ValueError("the zookeeper backend needs backend-machines (host:port)")
    if not namespace or namespace.startswith("/") or namespace.endswith("/"):
        raise ValueError(f"zookeeper namespace {namespace!r} must be a non-empty relative path")
    return ZooKeeperLogDriver(",".join(machines), f"/{namespace}")
