"""The in-memory twin of an external backend, for tests of everything above the driver.

`MemoryBackend` plays the server: one log, one snapshot and one lease shared by every
`MemoryLogDriver` opened on it (each standing for one dkron-trio server's connection). It
keeps the same rules as a real backend: dense indices assigned atomically, a fence checked
in the same step as the append, a lease that expires ``ttl`` seconds (Trio's clock, so
`MockClock` drives it) after its last renewal, and `BackendError` once the driver is closed.
"""

import attrs
import trio

from dkron_trio.store.backend import BackendError, Entry, Fenced, Lease


@attrs.define(eq=False)
class MemoryBackend:
    """One backend's state; `driver()` opens a client on it."""

    _entries: dict[int, bytes] = attrs.field(factory=dict)
    _last: int = 0
    _snapshot: tuple[int, bytes] | None = None
    _lease: Lease | None = None
    _expires: float = 0.0
    _fences: int = 0
    _changed: trio.Event = attrs.field(factory=trio.Event)
    _down: bool = False

    def driver(self) -> "MemoryLogDriver":
        return MemoryLogDriver(self)

    def set_down(self, down: bool) -> None:
        """Make every call fail (an unreachable backend) or succeed again."""
        self._down = down

    def check_up(self) -> None:
        if self._down:
            raise BackendError("memory backend is down")

    def notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_change(self) -> None:
        await self._changed.wait()

    @property
    def last(self) -> int:
        return self._last

    @property
    def first_kept(self) -> int:
        return 1 if self._snapshot is None else self._snapshot[0] + 1

    def current(self) -> Lease | None:
        if self._lease is not None and trio.current_time() >= self._expires:
            self._lease = None
            self.notify()
        return self._lease

    def append(self, data: bytes, fence: Lease | None) -> int:
        if fence is not None and self.current() != fence:
            raise Fenced(f"lease {fence.fence} of {fence.holder} is no longer current")
        self._last += 1
        self._entries[self._last] = data
        self.notify()
        return self._last

    def entries(self, after: int, limit: int) -> list[Entry]:
        if after + 1 < self.first_kept:
            raise BackendError(f"entries up to {self.first_kept - 1} were compacted")
        stop = min(self._last, after + limit)
        return [Entry(i, self._entries[i]) for i in range(after + 1, stop + 1)]

    def save_snapshot(self, index: int, image: bytes) -> None:
        if index > self._last:
            raise BackendError(f"snapshot index {index} is past the log's end {self._last}")
        if self._snapshot is not None and index <= self._snapshot[0]:
            return
        self._snapshot = (index, image)
        for i in [i for i in self._entries if i <= index]:
            del self._entries[i]

    def load_snapshot(self) -> tuple[int, bytes] | None:
        return self._snapshot

    def try_acquire(self, holder: str, ttl: float) -> Lease | None:
        if self.current() is not None:
            return None
        self._fences += 1
        self._lease = Lease(holder, self._fences)
        self._expires = trio.current_time() + ttl
        self.notify()
        return self._lease

    def expiry(self) -> float:
        return self._expires

    def renew(self, lease: Lease, ttl: float) -> bool:
        if self.current() != lease:
            return False
        self._expires = trio.current_time() + ttl
        return True

    def resign(self, lease: Lease) -> None:
        if self.current() == lease:
            self._lease = None
            self.notify()


@attrs.define(eq=False)
class MemoryLogDriver:
    """`LogDriver` over a `MemoryBackend`."""

    _backend: MemoryBackend
    _closed: bool = False

    def _up(self) -> MemoryBackend:
        if self._closed:
            raise BackendError("driver closed")
        self._backend.check_up()
        return self._backend

    async def append(self, data: bytes, *, fence: Lease | None = None) -> int:
        await trio.lowlevel.checkpoint()
        return self._up().append(data, fence)

    async def entries(self, after: int, limit: int) -> list[Entry]:
        await trio.lowlevel.checkpoint()
        return self._up().entries(after, limit)

    async def wait_entries(self, after: int, max_wait: float) -> None:
        with trio.move_on_after(max_wait):
            while self._up().last <= after:
                await self._backend.wait_change()

    async def save_snapshot(self, index: int, image: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self._up().save_snapshot(index, image)

    async def load_snapshot(self) -> tuple[int, bytes] | None:
        await trio.lowlevel.checkpoint()
        return self._up().load_snapshot()

    async def campaign(self, holder: str, ttl: float) -> Lease:
        while True:
            backend = self._up()
            lease = backend.try_acquire(holder, ttl)
            if lease is not None:
                return lease
            with trio.move_on_at(backend.expiry()):
                await backend.wait_change()

    async def renew(self, lease: Lease, ttl: float) -> bool:
        await trio.lowlevel.checkpoint()
        return self._up().renew(lease, ttl)

    async def resign(self, lease: Lease) -> None:
        await trio.lowlevel.checkpoint()
        self._up().resign(lease)

    async def leader(self) -> Lease | None:
        await trio.lowlevel.checkpoint()
        return self._up().current()

    async def aclose(self) -> None:
        self._closed = True
