"""DueQueue: each item released at its time, never before, from one task."""

from datetime import UTC, datetime, timedelta

import trio
import trio.testing
from trio.testing import MockClock

from dkron_trio.clock import WallClock
from dkron_trio.due_queue import DueQueue

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def test_items_are_released_at_their_time_in_order(autojump_clock: MockClock) -> None:
    clock = WallClock.starting_at(T0)
    released: list[tuple[str, datetime]] = []
    queue: DueQueue[str] = DueQueue(clock, lambda item: released.append((item, clock.now())))
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)
        queue.add(T0 + timedelta(seconds=3), "c")
        queue.add(T0 + timedelta(seconds=1), "a")
        queue.add(T0 + timedelta(seconds=2), "b1")
        queue.add(T0 + timedelta(seconds=2), "b2")
        await trio.sleep(1.5)
        assert released == [("a", T0 + timedelta(seconds=1))]
        assert sorted(queue.held()) == ["b1", "b2", "c"]
        queue.add(T0 + timedelta(seconds=1.75), "late-added, earlier")  # wakes the sleeper
        await trio.sleep(5)
        nursery.cancel_scope.cancel()
    assert [item for item, _ in released] == ["a", "late-added, earlier", "b1", "b2", "c"]
    for item, at in released[1:]:
        due = {"late-added, earlier": 1.75, "b1": 2, "b2": 2, "c": 3}[item]
        assert at == T0 + timedelta(seconds=due)
    assert queue.held() == []


async def test_an_item_already_due_is_released_at_once(autojump_clock: MockClock) -> None:
    clock = WallClock.starting_at(T0)
    released: list[str] = []
    queue: DueQueue[str] = DueQueue(clock, released.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)
        await trio.sleep(1)
        queue.add(T0, "past")
        await trio.testing.wait_all_tasks_blocked()
        assert released == ["past"]
        assert trio.current_time() == 1  # no time passed
        nursery.cancel_scope.cancel()


async def test_a_queue_made_early_releases_that_much_ahead(autojump_clock: MockClock) -> None:
    clock = WallClock.starting_at(T0)
    released: list[datetime] = []
    queue: DueQueue[str] = DueQueue(
        clock, lambda item: released.append(clock.now()), timedelta(milliseconds=2)
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)
        queue.add(T0 + timedelta(seconds=1), "run")
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert released == [T0 + timedelta(milliseconds=998)]
