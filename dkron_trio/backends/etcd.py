"""etcd (v3) as a dkron-trio backend, through its JSON gateway (httpx, native under Trio).

Everything lives under the key prefix ``/<namespace>/``:

* ``head``: the index of the last entry; ``log/<index, 20 digits>``: one command each. An
  append is one transaction: if ``head`` is unchanged since it was read (its mod revision),
  write entry ``head + 1`` and the new head; with a fence, also only if the leader key still
  has the fence as its create revision. Concurrent appenders retry on the new head, so
  indices are dense and an entry is visible only with every entry before it.
* ``leader``: the holder's name, attached to an etcd lease of the TTL; its create revision
  (etcd's global revision when it was created, which only grows) is the fence. Campaigning
  creates it only if absent; renewing keeps the etcd lease alive; resigning revokes it,
  deleting the key at once.
* ``snap/meta`` (JSON: index, chunk count, id) and ``chunks/<id>/<chunk>``: the latest state
  image in chunks of 1 MiB (etcd refuses requests above 1.5 MiB). The meta and the deletion
  of the entries it covers are one transaction.

Waiting for entries and for a free lease uses etcd's watch stream, bounded by a timeout.
"""

import base64
import json
import math
import secrets
from collections.abc import Sequence
from typing import Any

import attrs
import httpx
import trio

from dkron_trio.backends.batching import AppendBatcher
from dkron_trio.store.backend import BackendError, Entry, Fenced, Lease, LogDriver

CHUNK = 1 << 20
"""Bytes of a snapshot image per key."""
BATCH_ENTRIES = 64
"""Entries per append transaction (etcd allows 128 operations in one)."""
BATCH_BYTES = 1 << 20
"""Bytes of entries per append transaction (etcd refuses requests above 1.5 MiB; a single
larger entry is sent alone, and refused by etcd)."""
REQUEST_TIMEOUT = 10.0
CAMPAIGN_RECHECK = 1.0
"""Longest wait on a watch for the leader key before looking at it again."""
_INDEX_DIGITS = 20


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text)


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key after every key starting with ``prefix`` (etcd's range_end)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"


@attrs.frozen
class _Kv:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int


def _kv(raw: dict[str, Any]) -> _Kv:
    return _Kv(
        _unb64(raw.get("key", "")),
        _unb64(raw.get("value", "")),
        int(raw.get("create_revision", 0)),
        int(raw.get("mod_revision", 0)),
    )


@attrs.define(eq=False)
class EtcdLogDriver:
    """`LogDriver` over etcd; create with `open_driver` (connects on first use)."""

    _machines: tuple[str, ...]
    _prefix: bytes
    _client: httpx.AsyncClient | None = None
    _endpoint: int = 0
    _head: tuple[int, int] = (0, 0)
    """(last index, mod revision of the head key) as last seen: the next append's guess."""
    _lease_ids: dict[int, str] = attrs.field(factory=dict)
    """etcd lease ID of each fence this driver campaigned for."""
    _batcher: AppendBatcher = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._batcher = AppendBatcher(self._append_batch, BATCH_ENTRIES, BATCH_BYTES)

    # -- keys ---------------------------------------------------------------------------------

    def _key(self, name: str) -> bytes:
        return self._prefix + name.encode()

    def _log_key(self, index: int) -> bytes:
        return self._key(f"log/{index:0{_INDEX_DIGITS}d}")

    # -- transport ----------------------------------------------------------------------------

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=REQUEST_TIMEOUT)
        return self._client

    def _url(self, path: str) -> str:
        machine = self._machines[self._endpoint % len(self._machines)]
        base = machine if "://" in machine else f"http://{machine}"
        return base.rstrip("/") + path

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http().post(self._url(path), json=body)
        except httpx.HTTPError as exc:
            self._endpoint += 1  # the next call tries the next machine
            raise BackendError(f"etcd {path}: {exc!r}") from None
        return _decode(path, response.status_code, response.content)

    async def _txn(
        self,
        compare: list[dict[str, Any]],
        success: list[dict[str, Any]],
        failure: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        body = {"compare": compare, "success": success, "failure": failure or []}
        return await self._post("/v3/kv/txn", body)

    async def _range(self, key: bytes, end: bytes | None = None, limit: int = 0) -> list[_Kv]:
        body: dict[str, Any] = {"key": _b64(key)}
        if end is not None:
            body["range_end"] = _b64(end)
        if limit:
            body["limit"] = limit
        found = await self._post("/v3/kv/range", body)
        return [_kv(kv) for kv in found.get("kvs", [])]

    async def _watch_once(self, key: bytes, start_revision: int, max_wait: float) -> None:
        """Return at the first change of ``key`` from ``start_revision`` on, or after
        ``max_wait`` seconds."""
        body = {"create_request": {"key": _b64(key), "start_revision": start_revision}}
        timeout = httpx.Timeout(REQUEST_TIMEOUT, read=None)
        with trio.move_on_after(max_wait):
            try:
                async with self._http().stream(
                    "POST", self._url("/v3/watch"), json=body, timeout=timeout
                ) as response:
                    async for line in response.aiter_lines():
                        result = json.loads(line).get("result", {})
                        if result.get("events") or result.get("canceled"):
                            return
            except (httpx.HTTPError, ValueError) as exc:
                self._endpoint += 1
                raise BackendError(f"etcd watch: {exc!r}") from None

    # -- the log ------------------------------------------------------------------------------

    async def append(self, data: bytes, *, fence: Lease | None = None) -> int:
        return await self._batcher.append(data, fence)

    async def _append_batch(self, batch: Sequence[bytes], fence: Lease | None) -> int:
        """Append ``batch`` in one transaction; the first entry's index."""
        head_key, leader_key = self._key("head"), self._key("leader")
        while True:
            last, mod = self._head
            compare = [
                {"key": _b64(head_key), "target": "MOD", "result": "EQUAL", "mod_revision": mod}
            ]
            if fence is not None:
                compare.append(
                    {
                        "key": _b64(leader_key),
                        "target": "CREATE",
                        "result": "EQUAL",
                        "create_revision": fence.fence,
                    }
                )
            end = last + len(batch)
            puts = [
                {"request_put": {"key": _b64(self._log_key(last + 1 + n)), "value": _b64(data)}}
                for n, data in enumerate(batch)
            ]
            puts.append({"request_put": {"key": _b64(head_key), "value": _b64(b"%d" % end)}})
            reads = [
                {"request_range": {"key": _b64(head_key)}},
                {"request_range": {"key": _b64(leader_key)}},
            ]
            result = await self._txn(compare, puts, reads)
            if result.get("succeeded"):
                self._head = (end, int(result["header"]["revision"]))
                return last + 1
            head_kvs, leader_kvs = (_range_kvs(r) for r in result.get("responses", [{}, {}]))
            self._head = (int(head_kvs[0].value), head_kvs[0].mod_revision) if head_kvs else (0, 0)
            if fence is not None:
                current = leader_kvs[0].create_revision if leader_kvs else 0
                if current != fence.fence:
                    raise Fenced(f"lease {fence.fence} of {fence.holder} is no longer current")

    async def entries(self, after: int, limit: int) -> list[Entry]:
        start, end = self._log_key(after + 1), prefix_end(self._key("log/"))
        reads: list[dict[str, Any]] = [
            {"request_range": {"key": _b64(start), "range_end": _b64(end), "limit": limit}},
            {"request_range": {"key": _b64(self._key("snap/meta"))}},
        ]
        result = await self._txn([], reads)
        log_kvs, meta_kvs = (_range_kvs(r) for r in result.get("responses", []))
        kept_from = json.loads(meta_kvs[0].value)["index"] + 1 if meta_kvs else 1
        if after + 1 < kept_from:
            raise BackendError(f"etcd: entries up to {kept_from - 1} were compacted")
        found = [Entry(int(kv.key.rsplit(b"/", 1)[1]), kv.value) for kv in log_kvs]
        if [e.index for e in found] != list(range(after + 1, after + 1 + len(found))):
            raise BackendError(f"etcd: the log after {after} is not dense (compacted meanwhile)")
        return found

    async def wait_entries(self, after: int, max_wait: float) -> None:
        result = await self._post("/v3/kv/range", {"key": _b64(self._key("head"))})
        kvs = [_kv(kv) for kv in result.get("kvs", [])]
        if kvs and int(kvs[0].value) > after:
            return
        revision = int(result["header"]["revision"])
        await self._watch_once(self._key("head"), revision + 1, max_wait)

    # -- snapshots ----------------------------------------------------------------------------

    async def save_snapshot(self, index: int, image: bytes) -> None:
        meta_key = self._key("snap/meta")
        old = await self._range(meta_key)
        old_meta = json.loads(old[0].value) if old else None
        if old_meta is not None and old_meta["index"] >= index:
            return
        snap_id = secrets.token_hex(8)
        count = max(1, math.ceil(len(image) / CHUNK))
        for n in range(count):
            key = self._key(f"chunks/{snap_id}/{n:06d}")
            await self._post(
                "/v3/kv/put", {"key": _b64(key), "value": _b64(image[n * CHUNK : (n + 1) * CHUNK])}
            )
        meta = json.dumps({"index": index, "chunks": count, "id": snap_id}).encode()
        compare = [
            {
                "key": _b64(meta_key),
                "target": "MOD",
                "result": "EQUAL",
                "mod_revision": old[0].mod_revision if old else 0,
            }
        ]
        success = [
            {"request_put": {"key": _b64(meta_key), "value": _b64(meta)}},
            {
                "request_delete_range": {
                    "key": _b64(self._log_key(1)),
                    "range_end": _b64(self._log_key(index + 1)),
                }
            },
        ]
        result = await self._txn(compare, success)
        if result.get("succeeded"):
            await self._delete_chunks_except(snap_id)
        else:
            chunks = self._key(f"chunks/{snap_id}/")
            await self._delete_range(chunks, prefix_end(chunks))

    async def _delete_chunks_except(self, keep: str) -> None:
        """Every chunk but ``keep``'s: the replaced snapshot's, and any a saver that died
        midway left behind."""
        every, kept = self._key("chunks/"), self._key(f"chunks/{keep}/")
        await self._delete_range(every, kept)
        await self._delete_range(prefix_end(kept), prefix_end(every))

    async def _delete_range(self, key: bytes, end: bytes) -> None:
        await self._post("/v3/kv/deleterange", {"key": _b64(key), "range_end": _b64(end)})

    async def load_snapshot(self) -> tuple[int, bytes] | None:
        seen = None
        while True:
            found = await self._range(self._key("snap/meta"))
            if not found:
                return None
            meta = json.loads(found[0].value)
            chunks = self._key(f"chunks/{meta['id']}/")
            parts = await self._range(chunks, prefix_end(chunks))
            if len(parts) == meta["chunks"]:
                return meta["index"], b"".join(kv.value for kv in parts)
            if meta["id"] == seen:
                raise BackendError(f"etcd: snapshot {meta['id']} lacks chunks")
            seen = meta["id"]  # replaced meanwhile (its chunks deleted): read the new one

    # -- leadership ---------------------------------------------------------------------------

    async def campaign(self, holder: str, ttl: float) -> Lease:
        leader_key = _b64(self._key("leader"))
        while True:
            found = await self._post("/v3/kv/range", {"key": leader_key})
            if found.get("kvs"):
                revision = int(found["header"]["revision"])
                await self._watch_once(self._key("leader"), revision + 1, CAMPAIGN_RECHECK)
                continue
            grant = await self._post("/v3/lease/grant", {"TTL": max(1, math.ceil(ttl))})
            lease_id = grant["ID"]
            compare = [
                {"key": leader_key, "target": "CREATE", "result": "EQUAL", "create_revision": 0}
            ]
            put = {
                "request_put": {
                    "key": leader_key,
                    "value": _b64(holder.encode()),
                    "lease": lease_id,
                }
            }
            result = await self._txn(compare, [put])
            if result.get("succeeded"):
                fence = int(result["header"]["revision"])
                self._lease_ids[fence] = lease_id
                return Lease(holder, fence)
            await self._revoke(lease_id)

    async def renew(self, lease: Lease, ttl: float) -> bool:
        lease_id = self._lease_ids.get(lease.fence)
        if lease_id is None:
            return False
        try:
            response = await self._http().post(
                self._url("/v3/lease/keepalive"), json={"ID": lease_id}
            )
        except httpx.HTTPError as exc:
            self._endpoint += 1
            raise BackendError(f"etcd keepalive: {exc!r}") from None
        first = response.content.split(b"\n", 1)[0]
        result = _decode("/v3/lease/keepalive", response.status_code, first).get("result", {})
        if int(result.get("TTL", 0)) <= 0:
            self._lease_ids.pop(lease.fence, None)
            return False
        return True

    async def resign(self, lease: Lease) -> None:
        lease_id = self._lease_ids.pop(lease.fence, None)
        if lease_id is not None:
            await self._revoke(lease_id)

    async def _revoke(self, lease_id: str) -> None:
        try:
            await self._post("/v3/lease/revoke", {"ID": lease_id})
        except BackendError as exc:
            if "lease not found" not in str(exc):
                raise

    async def leader(self) -> Lease | None:
        found = await self._range(self._key("leader"))
        if not found:
            return None
        return Lease(found[0].value.decode(), found[0].create_revision)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _decode(path: str, status: int, content: bytes) -> dict[str, Any]:
    try:
        body = json.loads(content)
    except ValueError:
        raise BackendError(f"etcd {path}: HTTP {status}, not JSON: {content[:200]!r}") from None
    if status != 200 or not isinstance(body, dict) or "error" in body:
        message = body.get("message") or body.get("error") if isinstance(body, dict) else body
        raise BackendError(f"etcd {path}: HTTP {status}: {message}")
    return body


def _range_kvs(response: dict[str, Any]) -> list[_Kv]:
    return [_kv(kv) for kv in response.get("response_range", {}).get("kvs", [])]


def open_driver(machines: Sequence[str], namespace: str) -> LogDriver:
    """An etcd driver for ``machines`` (host:port of client URLs) under ``/namespace/``."""
    if not machines:
        raise ValueError("etcd: backend-machines must name at least one etcd endpoint")
    prefix = f"/{namespace.strip('/')}/".encode()
    return EtcdLogDriver(tuple(machines), prefix)
