"""Leadership over the in-memory backend, on Trio's mock clock: the leader's work stops
within 2/3 of the TTL once renewals fail, before the backend could hand the lease on."""

import trio
import trio.testing

from dkron_trio.backends.leadership import Leadership
from dkron_trio.backends.memory import MemoryBackend
from dkron_trio.store.backend import Lease

TTL = 9.0


async def test_work_stops_before_the_backend_expires_an_unrenewed_lease(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = MemoryBackend()
    barriers: list[Lease] = []

    async def barrier(lease: Lease) -> None:
        barriers.append(lease)

    leadership = Leadership(backend.driver(), "a", TTL, barrier)
    spans: list[tuple[float, float | None]] = []

    async def work() -> None:
        spans.append((trio.current_time(), None))
        try:
            await trio.sleep_forever()
        finally:
            spans[-1] = (spans[-1][0], trio.current_time())

    async with trio.open_nursery() as nursery:
        await nursery.start(leadership.run)
        nursery.start_soon(leadership.lead, work)
        await trio.sleep(5 * TTL)  # renewals keep it: one span, still open
        assert len(spans) == 1 and spans[0][1] is None
        assert leadership.current == barriers[0]
        down_at = trio.current_time()
        backend.set_down(True)
        await trio.sleep(TTL)
        ended = spans[0][1]
        assert ended is not None and ended - down_at <= TTL * 2 / 3
        assert leadership.current is None
        backend.set_down(False)
        await trio.sleep(2 * TTL)
        assert len(barriers) == 2 and barriers[1].fence > barriers[0].fence
        assert len(spans) == 2 and spans[1][1] is None
        nursery.cancel_scope.cancel()


async def test_leaving_resigns_at_once(autojump_clock: trio.testing.MockClock) -> None:
    backend = MemoryBackend()

    async def barrier(lease: Lease) -> None:
        return None

    a = Leadership(backend.driver(), "a", TTL, barrier)
    b = Leadership(backend.driver(), "b", TTL, barrier)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await trio.sleep(1)
        await nursery.start(b.run)
        await trio.sleep(1)
        assert a.current is not None and b.current is None
        left_at = trio.current_time()
        await a.leave()
        version, lease = await b.next_change(-1)
        while lease is None:
            version, lease = await b.next_change(version)
        assert trio.current_time() - left_at < 1
        assert a.current is None
        nursery.cancel_scope.cancel()


async def test_a_server_that_left_does_not_take_the_lease_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    backend = MemoryBackend()

    async def barrier(lease: Lease) -> None:
        return None

    a = Leadership(backend.driver(), "a", TTL, barrier)
    b = Leadership(backend.driver(), "b", TTL, barrier)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await trio.sleep(1)
        await nursery.start(b.run)  # waits for a's lease
        await b.leave()
        await a.leave()
        await trio.sleep(3 * TTL)
        assert await backend.driver().leader() is None
        assert a.current is None and b.current is None
        nursery.cancel_scope.cancel()
