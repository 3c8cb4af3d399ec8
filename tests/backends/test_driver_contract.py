"""The `LogDriver` contract, against the in-memory twin and every real backend.

Timing tests use the backend's real lease clock, with a TTL of two seconds: short enough to
keep the suite quick, long enough that renewals every quarter second hold on a loaded
machine. They wait on conditions with deadlines.
"""

import pytest
import trio

from dkron_trio.store.backend import BackendError, Entry, Fenced, Lease, LogDriver
from tests.backends.conftest import BackendUnderTest

TTL = 2.0
SLACK = 10.0
"""Generous bound for anything that should happen promptly (a loaded CI machine)."""


async def test_appends_get_dense_indices_read_back_in_order(driver: LogDriver) -> None:
    assert await driver.entries(0, 10) == []
    assert [await driver.append(d) for d in (b"a", b"b", b"c")] == [1, 2, 3]
    assert await driver.entries(0, 10) == [Entry(1, b"a"), Entry(2, b"b"), Entry(3, b"c")]
    assert await driver.entries(1, 1) == [Entry(2, b"b")]
    assert await driver.entries(3, 10) == []
    assert await driver.append(b"") == 4
    assert await driver.entries(3, 10) == [Entry(4, b"")]


async def test_concurrent_appenders_never_share_or_skip_an_index(
    backend: BackendUnderTest,
) -> None:
    drivers = [backend.open() for _ in range(3)]
    got: dict[int, bytes] = {}

    async def appender(n: int, driver: LogDriver) -> None:
        for k in range(4):
            data = f"{n}-{k}".encode()
            index = await driver.append(data)
            assert index not in got
            got[index] = data

    async with trio.open_nursery() as nursery:
        for n, driver in enumerate(drivers):
            nursery.start_soon(appender, n, driver)
    assert sorted(got) == list(range(1, 13))
    assert await drivers[0].entries(0, 100) == [Entry(i, got[i]) for i in range(1, 13)]


async def test_wait_entries_wakes_on_an_append_from_elsewhere(backend: BackendUnderTest) -> None:
    reader, writer = backend.open(), backend.open()
    await writer.append(b"x")
    with trio.fail_after(SLACK):
        await reader.wait_entries(0, SLACK * 2)  # one exists already: returns at once
    woke = trio.Event()

    async def wait() -> None:
        await reader.wait_entries(1, SLACK * 2)
        woke.set()

    with trio.fail_after(SLACK):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait)
            await writer.append(b"y")
            await woke.wait()


async def test_wait_entries_returns_after_max_wait_when_nothing_comes(driver: LogDriver) -> None:
    await driver.append(b"x")
    start = trio.current_time()
    with trio.fail_after(SLACK):
        await driver.wait_entries(1, 0.2)
    assert trio.current_time() - start >= 0.1


async def test_a_second_campaign_waits_and_resign_hands_over(backend: BackendUnderTest) -> None:
    a, b = backend.open(), backend.open()
    assert await a.leader() is None
    with trio.fail_after(SLACK):
        first = await a.campaign("a", TTL * 10)
    assert first.holder == "a"
    assert await b.leader() == first
    with trio.move_on_after(0.3) as waited:
        await b.campaign("b", TTL * 10)
    assert waited.cancelled_caught, "b took a lease that a holds"
    with trio.fail_after(SLACK):
        async with trio.open_nursery() as nursery:
            taken: list[Lease] = []

            async def campaign_b() -> None:
                taken.append(await b.campaign("b", TTL * 10))

            nursery.start_soon(campaign_b)
            await a.resign(first)
    second = taken[0]
    assert second == await a.leader()
    assert second.holder == "b" and second.fence > first.fence
    assert not await a.renew(first, TTL * 10)


async def test_an_append_under_a_replaced_lease_is_fenced(backend: BackendUnderTest) -> None:
    a, b = backend.open(), backend.open()
    with trio.fail_after(SLACK):
        first = await a.campaign("a", TTL * 10)
    assert await a.append(b"plan", fence=first) == 1
    await a.resign(first)
    with trio.fail_after(SLACK):
        second = await b.campaign("b", TTL * 10)
    with pytest.raises(Fenced):
        await a.append(b"stale plan", fence=first)
    assert await b.append(b"new plan", fence=second) == 2
    assert await b.entries(0, 10) == [Entry(1, b"plan"), Entry(2, b"new plan")]


async def test_a_renewed_lease_holds_and_an_abandoned_one_expires(
    backend: BackendUnderTest,
) -> None:
    a, b = backend.open(), backend.open()
    with trio.fail_after(SLACK):
        first = await a.campaign("a", TTL)
    taken: list[Lease] = []
    took = trio.Event()

    async def campaign_b() -> None:
        taken.append(await b.campaign("b", TTL))
        took.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(campaign_b)
        end = trio.current_time() + 1.25 * TTL  # past the TTL
        while trio.current_time() < end:
            assert await a.renew(first, TTL)
            assert not taken, "b took a lease that a kept renewing"
            await trio.sleep(0.25)  # the renewal cadence, not a wait for an outcome
        with trio.fail_after(SLACK):
            await took.wait()
    second = taken[0]
    assert second.holder == "b" and second.fence > first.fence
    assert not await a.renew(first, TTL)
    with pytest.raises(Fenced):
        await a.append(b"late", fence=first)


async def test_a_snapshot_compacts_and_survives_any_size(driver: LogDriver) -> None:
    assert await driver.load_snapshot() is None
    for n in range(5):
        await driver.append(b"e%d" % n)
    image = bytes(range(256)) * (3 * 4096 + 7)  # ~3 MiB: above etcd's and DynamoDB's limits
    await driver.save_snapshot(3, image)
    assert await driver.load_snapshot() == (3, image)
    with pytest.raises(BackendError):
        await driver.entries(0, 10)
    assert await driver.entries(3, 10) == [Entry(4, b"e3"), Entry(5, b"e4")]
    assert await driver.append(b"after") == 6
    await driver.save_snapshot(6, b"small")
    assert await driver.load_snapshot() == (6, b"small")
    assert await driver.entries(6, 10) == []
    assert await driver.append(b"next") == 7


async def test_a_fresh_driver_sees_what_another_wrote(backend: BackendUnderTest) -> None:
    first = backend.open()
    await first.append(b"one")
    await first.save_snapshot(1, b"image")
    await first.append(b"two")
    await first.aclose()
    second = backend.open()
    assert await second.load_snapshot() == (1, b"image")
    assert await second.entries(1, 10) == [Entry(2, b"two")]
