"""Leadership over a backend's lease: campaign, renew, and run the leader's work per lease.

`run` campaigns for the lease, makes the replica reflect every entry before it (a barrier
entry appended under the new lease, then applied here) and only then announces it; `lead`
runs the agent's work in a cancel scope for each announced lease, like `RaftServer.lead`.

A lease ends here *before* the backend can expire it: when a renewal is refused, or when
two thirds of the TTL passed since the start of the last successful renewal, measured on
this process's monotonic clock (only durations are compared, never wall clocks across
machines). The backend's own expiry comes a third of the TTL later, so a deposed leader has
stopped its work before another server can be elected; its late appends are fenced anyway.
"""

from collections.abc import Awaitable, Callable

import attrs
import trio

from dkron_trio.logs import get_logger
from dkron_trio.store.backend import BackendError, Fenced, Lease, LogDriver
from dkron_trio.store.base import ClusterUnavailable

log = get_logger(__name__)

RETRY = 0.5
"""Pause after the backend failed before campaigning again."""
WORK_RESTART = 1.0
"""Pause before the leader's work runs again after a write of it failed."""
RESIGN_WAIT = 2.0
"""Longest wait for the backend to take a resignation (leaving, shutting down)."""
WATCH_INTERVAL = 1.0
"""How often a server that does not lead refreshes who does."""


@attrs.define(eq=False)
class Leadership:
    """One server's side of the lease. `await nursery.start(leadership.run)`."""

    _driver: LogDriver
    _holder: str
    _ttl: float
    _barrier: Callable[[Lease], Awaitable[None]]
    """Returns once the local replica reflects every entry appended before the lease."""
    _lease: Lease | None = None
    """The lease this server holds and has announced (None while it does not lead)."""
    _held: Lease | None = None
    """The lease acquired, announced or not, until it is lost or resigned."""
    _known: Lease | None = None
    _version: int = 0
    _changed: trio.Event = attrs.field(factory=trio.Event)
    _campaigning: trio.CancelScope = attrs.field(factory=trio.CancelScope)
    """Cancelled by `leave`: no campaign after it, not even one already waiting."""

    @property
    def current(self) -> Lease | None:
        """The lease to fence the leader's writes with, while this server leads."""
        return self._lease

    @property
    def known_leader(self) -> Lease | None:
        """The lease holder as last seen (this server's own lease while it leads)."""
        return self._lease or self._known

    @property
    def fence(self) -> int:
        """The highest fence this server knows: its own while it leads (orders carry it)."""
        known = self.known_leader
        return 0 if known is None else known.fence

    async def next_change(self, version: int) -> tuple[int, Lease | None]:
        """Wait until the announced lease changed after ``version`` (-1: now)."""
        while self._version == version:
            await self._changed.wait()
        return self._version, self._lease

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_leader)
            task_status.started()
            with self._campaigning:
                while True:
                    await self._one_lease()
            await trio.sleep_forever()

    async def _one_lease(self) -> None:
        try:
            lease = await self._driver.campaign(self._holder, self._ttl)
        except BackendError as exc:
            log.warning("campaign failed, retrying", error=str(exc))
            await trio.sleep(RETRY)
            return
        self._held = lease
        log.info("lease acquired", holder=lease.holder, fence=lease.fence)
        try:
            await self._hold(lease)
        finally:
            self._set(None)
            if self._held == lease:
                self._held = None
                with trio.CancelScope(shield=True):
                    await self._resign(lease)
        log.info("lease ended", holder=lease.holder, fence=lease.fence)

    async def lead(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` for every lease this server holds, after its barrier; cancelled when
        the lease ends. Returns only when cancelled."""
        version = -1
        while True:
            version, lease = await self.next_change(version)
            if lease is None:
                continue
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._work_loop, work, lease)
                while self._lease == lease:
                    version, _ = await self.next_change(version)
                nursery.cancel_scope.cancel()

    async def leave(self) -> None:
        """Stop campaigning and give the lease up now, so another server need not wait for
        it to expire."""
        self._campaigning.cancel()
        lease, self._held = self._held, None
        self._set(None)
        if lease is not None:
            await self._resign(lease)

    async def _work_loop(self, work: Callable[[], Awaitable[None]], lease: Lease) -> None:
        log.info("leading", fence=lease.fence)
        while True:
            try:
                await work()
            except* ClusterUnavailable as group:  # alone or from a nursery
                errors = "; ".join(str(e) for e in group.exceptions)
                log.warning("leader work failed, restarting", fence=lease.fence, error=errors)
            await trio.sleep(WORK_RESTART)

    async def _hold(self, lease: Lease) -> None:
        """Renew ``lease`` until it is lost; announce it once the barrier is applied."""
        async with trio.open_nursery() as nursery:

            async def barrier_then_announce() -> None:
                try:
                    await self._barrier(lease)
                except (Fenced, BackendError, ClusterUnavailable) as exc:
                    log.info("lease lost before its barrier", fence=lease.fence, error=str(exc))
                    nursery.cancel_scope.cancel()
                    return
                if self._held == lease:
                    self._set(lease)

            nursery.start_soon(barrier_then_announce)
            await self._renew_until_lost(lease)
            nursery.cancel_scope.cancel()

    async def _renew_until_lost(self, lease: Lease) -> None:
        valid_until = trio.current_time() + self._ttl * 2 / 3
        while self._held == lease:
            await trio.sleep(self._ttl / 6)
            attempt = trio.current_time()
            renewed = False
            with trio.move_on_at(valid_until):
                try:
                    renewed = await self._driver.renew(lease, self._ttl)
                except BackendError as exc:
                    log.warning("lease renewal failed", fence=lease.fence, error=str(exc))
                    continue
                if not renewed:
                    log.warning("lease renewal refused", fence=lease.fence)
                    return
                valid_until = attempt + self._ttl * 2 / 3
            if trio.current_time() >= valid_until:
                log.warning("lease not renewed within 2/3 of its ttl", fence=lease.fence)
                return

    async def _resign(self, lease: Lease) -> None:
        with trio.move_on_after(RESIGN_WAIT):
            try:
                await self._driver.resign(lease)
            except BackendError as exc:
                log.warning("resigning the lease failed", fence=lease.fence, error=str(exc))

    async def _watch_leader(self) -> None:
        while True:
            try:
                self._known = await self._driver.leader()
            except BackendError as exc:
                log.debug("leader unknown", error=str(exc))
            await trio.sleep(WATCH_INTERVAL)

    def _set(self, lease: Lease | None) -> None:
        if lease == self._lease:
            return
        self._lease = lease
        self._version += 1
        self._changed.set()
        self._changed = trio.Event()
