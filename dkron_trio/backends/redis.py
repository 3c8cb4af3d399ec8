"""The command log and leadership lease in Redis (redis-py's blocking client, in threads).

Keys live under ``{namespace}:`` (the braces are a hash tag: a Redis Cluster keeps them in
one slot, so every script below may touch them all). Every step that must be atomic is one
Lua script, which Redis runs alone:

- append: check the fence against the lock key when given, INCRBY the head, HSET the
  entries (concurrent appends of one process share a call: `AppendBatcher`);
- the lease: ``SET lock "fence:holder" NX PX ttl`` with the fence from INCR of a counter
  that never goes back, renewed by a compare-and-PEXPIRE; the expiry is Redis's own timer
  (a duration on one machine: no clock is compared between machines);
- a snapshot: chunks in their own keys (one key per chunk, under a token so two savers never
  mix), then one script switches the snapshot record and deletes the entries it covers.

Durability is Redis's: run it with ``appendonly yes`` (and ``appendfsync always`` to lose
no acknowledged write on a crash). `machines` names one server; the first is used.
"""

import secrets
from collections.abc import Callable, Sequence
from typing import TypeVar

import attrs
import redis
import trio

from dkron_trio.backends.batching import AppendBatcher
from dkron_trio.store.backend import BackendError, Entry, Fenced, Lease, LogDriver

T = TypeVar("T")

CHUNK = 512 * 1024
"""Snapshot bytes per key (far below Redis's 512 MiB value limit, to keep replies small)."""
BATCH_ENTRIES = 64
"""Concurrent appends of one process written by one script call (group commit)."""
BATCH_BYTES = 1 << 20
"""Bytes of entries per script call (a larger entry is written alone)."""
POLL = 0.05
"""Seconds between looks at the head while waiting for entries or a free lease."""
TIMEOUT = 10.0
"""Seconds a single Redis call may take before the driver reports the backend unreachable."""

_APPEND = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return false
end
local last = redis.call('INCRBY', KEYS[2], #ARGV - 1)
local first = last - #ARGV + 2
for i = 2, #ARGV do
  redis.call('HSET', KEYS[3], first + i - 2, ARGV[i])
end
return first
"""
_ENTRIES = """
local snap = tonumber(redis.call('HGET', KEYS[3], 'index') or '0')
local after = tonumber(ARGV[1])
if after < snap then
  return {-1}
end
local head = tonumber(redis.call('GET', KEYS[1]) or '0')
local last = math.min(head, after + tonumber(ARGV[2]))
local out = {snap}
for i = after + 1, last do
  out[#out + 1] = redis.call('HGET', KEYS[2], i)
end
return out
"""
_SWITCH_SNAPSHOT = """
local old = tonumber(redis.call('HGET', KEYS[1], 'index') or '0')
local index = tonumber(ARGV[1])
if index <= old then
  return false
end
local head = tonumber(redis.call('GET', KEYS[3]) or '0')
if index > head then
  return -1
end
local previous = redis.call('HMGET', KEYS[1], 'token', 'chunks')
redis.call('HSET', KEYS[1], 'index', index, 'token', ARGV[2], 'chunks', ARGV[3])
for i = old + 1, index do
  redis.call('HDEL', KEYS[2], i)
end
return {old, previous[1] or '', previous[2] or '0'}
"""
_CAMPAIGN = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], fence .. ':' .. ARGV[1], 'PX', ARGV[2])
return fence
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RESIGN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _lock_value(lease: Lease) -> bytes:
    return f"{lease.fence}:{lease.holder}".encode()


def _ttl_ms(ttl: float) -> int:
    if ttl <= 0:
        raise ValueError(f"lease ttl must be positive, got {ttl}")
    return max(1, round(ttl * 1000))


def _int(value: object) -> int:
    if not isinstance(value, int | bytes | str):
        raise BackendError(f"redis answered {value!r} where a number was due")
    return int(value)


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise BackendError(f"redis answered {value!r} where bytes were due")
    return value


def _host_port(machine: str) -> tuple[str, int]:
    host, sep, port = machine.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"backend-machines entry {machine!r} is not host:port")
    return host, int(port)


@attrs.define(eq=False)
class RedisLogDriver:
    """One server's connection; the client is made on first use (no I/O before)."""

    _host: str
    _port: int
    _namespace: str
    _client: "redis.Redis | None" = None
    _scripts: dict[str, "redis.commands.core.Script"] = attrs.field(factory=dict)
    _closed: bool = False
    _batcher: AppendBatcher = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._batcher = AppendBatcher(self._append_batch, BATCH_ENTRIES, BATCH_BYTES)

    def _key(self, name: str) -> str:
        return f"{{{self._namespace}}}:{name}"

    def _connect(self) -> "redis.Redis":
        if self._closed:
            raise BackendError("redis driver is closed")
        if self._client is None:
            client = redis.Redis(
                host=self._host,
                port=self._port,
                socket_timeout=TIMEOUT,
                socket_connect_timeout=TIMEOUT,
            )
            self._scripts = {
                "append": client.register_script(_APPEND),
                "entries": client.register_script(_ENTRIES),
                "switch": client.register_script(_SWITCH_SNAPSHOT),
                "campaign": client.register_script(_CAMPAIGN),
                "renew": client.register_script(_RENEW),
                "resign": client.register_script(_RESIGN),
            }
            self._client = client
        return self._client

    async def _call(self, fn: Callable[["redis.Redis"], T]) -> T:
        def run() -> T:
            try:
                return fn(self._connect())
            except redis.RedisError as exc:
                raise BackendError(f"redis {self._host}:{self._port}: {exc}") from exc

        return await trio.to_thread.run_sync(run, abandon_on_cancel=True)

    async def _script(self, name: str, keys: list[str], args: list[bytes | str | int]) -> object:
        def run(client: "redis.Redis") -> object:
            return self._scripts[name](keys=keys, args=args, client=client)

        return await self._call(run)

    async def append(self, data: bytes, *, fence: Lease | None = None) -> int:
        return await self._batcher.append(data, fence)

    async def _append_batch(self, batch: Sequence[bytes], fence: Lease | None) -> int:
        """Append ``batch`` in one script call; the first entry's index."""
        expected = b"" if fence is None else _lock_value(fence)
        keys = [self._key("lock"), self._key("head"), self._key("log")]
        index = await self._script("append", keys, [expected, *batch])
        if index is None:
            assert fence is not None
            raise Fenced(f"lease {fence.fence} of {fence.holder} is no longer current")
        return _int(index)

    async def entries(self, after: int, limit: int) -> list[Entry]:
        keys = [self._key("head"), self._key("log"), self._key("snapshot")]
        reply = await self._script("entries", keys, [after, limit])
        assert isinstance(reply, list)
        if reply[0] == -1:
            raise BackendError(f"entries after {after} were compacted")
        return [Entry(after + 1 + i, _bytes(data)) for i, data in enumerate(reply[1:])]

    async def wait_entries(self, after: int, max_wait: float) -> None:
        with trio.move_on_after(max_wait):
            while True:
                head = await self._call(lambda client: client.get(self._key("head")))
                if int(head or 0) > after:
                    return
                await trio.sleep(POLL)

    async def save_snapshot(self, index: int, image: bytes) -> None:
        token = secrets.token_hex(8)
        chunks = [image[i : i + CHUNK] for i in range(0, len(image), CHUNK)] or [b""]

        def write(client: "redis.Redis") -> None:
            client.mset({self._chunk_key(index, token, i): c for i, c in enumerate(chunks)})

        await self._call(write)
        keys = [self._key("snapshot"), self._key("log"), self._key("head")]
        replaced = await self._script("switch", keys, [index, token, len(chunks)])
        if replaced == -1:
            await self._drop_chunks(index, token, len(chunks))
            raise BackendError(f"snapshot index {index} is past the log's end")
        if replaced is None:  # a newer snapshot is there already
            await self._drop_chunks(index, token, len(chunks))
        elif isinstance(replaced, list) and replaced[1]:
            old, old_token, count = _int(replaced[0]), _bytes(replaced[1]), _int(replaced[2])
            await self._drop_chunks(old, old_token.decode(), count)

    def _chunk_key(self, index: int, token: str, i: int) -> str:
        return self._key(f"snapshot:{index}:{token}:{i}")

    async def _drop_chunks(self, index: int, token: str, count: int) -> None:
        names = [self._chunk_key(index, token, i) for i in range(count)]
        await self._call(lambda client: client.delete(*names))

    async def load_snapshot(self) -> tuple[int, bytes] | None:
        while True:
            meta = await self._call(lambda client: client.hgetall(self._key("snapshot")))
            if not meta:
                return None
            index, token = _int(meta[b"index"]), _bytes(meta[b"token"]).decode()
            names = [self._chunk_key(index, token, i) for i in range(_int(meta[b"chunks"]))]
            chunks = await self._mget(names)
            if all(c is not None for c in chunks):
                return index, b"".join(_bytes(c) for c in chunks)
            # A newer snapshot replaced this one (and dropped its chunks) meanwhile.

    async def _mget(self, names: list[str]) -> list[object]:
        return await self._call(lambda client: list(client.mget(names)))

    async def campaign(self, holder: str, ttl: float) -> Lease:
        keys = [self._key("lock"), self._key("fence")]
        while True:
            fence = await self._script("campaign", keys, [holder, _ttl_ms(ttl)])
            if fence is not None:
                return Lease(holder, _int(fence))
            await trio.sleep(POLL)

    async def renew(self, lease: Lease, ttl: float) -> bool:
        keys = [self._key("lock")]
        return bool(await self._script("renew", keys, [_lock_value(lease), _ttl_ms(ttl)]))

    async def resign(self, lease: Lease) -> None:
        await self._script("resign", [self._key("lock")], [_lock_value(lease)])

    async def leader(self) -> Lease | None:
        value = await self._call(lambda client: client.get(self._key("lock")))
        if value is None:
            return None
        fence, _, holder = _bytes(value).decode().partition(":")
        return Lease(holder, int(fence))

    async def aclose(self) -> None:
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            await trio.to_thread.run_sync(client.close)


def open_driver(machines: Sequence[str], namespace: str) -> LogDriver:
    """A driver for the Redis server at ``machines[0]`` keeping its keys under ``namespace``."""
    if not machines:
        raise ValueError("the redis backend needs backend-machines (host:port)")
    if not namespace:
        raise ValueError("the redis backend needs a non-empty namespace")
    host, port = _host_port(machines[0])
    return RedisLogDriver(host, port, namespace)
