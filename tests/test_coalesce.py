"""Coalescer: items that arrive during a flush share the next one; outcomes stay per item."""

from collections.abc import Sequence

import pytest
import trio
import trio.testing

from dkron_trio.coalesce import Coalescer


class Recorder:
    def __init__(self, fail_whole: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail_whole = fail_whole

    async def flush(self, items: list[int]) -> Sequence[int | Exception]:
        self.batches.append(items)
        await trio.sleep(1)
        if self.fail_whole:
            raise OSError("disk gone")
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]


async def _submit_all(coalescer: Coalescer[int, int], items: range) -> dict[int, object]:
    outcomes: dict[int, object] = {}

    async def one(i: int) -> None:
        try:
            outcomes[i] = await coalescer.submit(i)
        except Exception as exc:
            outcomes[i] = exc

    async with trio.open_nursery() as nursery:
        for i in items:
            nursery.start_soon(one, i)
            await trio.testing.wait_all_tasks_blocked()
    return outcomes


async def test_items_arriving_during_a_flush_share_the_next_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    outcomes = await _submit_all(Coalescer(recorder.flush), range(6))
    assert recorder.batches == [[0], [1, 2, 3, 4, 5]]
    assert outcomes[4] == 40
    assert isinstance(outcomes[3], ValueError)
    assert str(outcomes[3]) == "odd 3"


async def test_batches_are_bounded(autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    await _submit_all(Coalescer(recorder.flush, max_batch=2), range(6))
    assert recorder.batches == [[0], [1, 2], [3, 4], [5]]


async def test_batches_are_bounded_by_weight(autojump_clock: trio.testing.MockClock) -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.flush, weight=lambda i: 10 if i == 3 else 1, max_weight=4)
    await _submit_all(coalescer, range(8))
    assert recorder.batches == [[0], [1, 2], [3], [4, 5, 6, 7]]


async def test_a_failed_flush_fails_every_item_in_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder(fail_whole=True)
    outcomes = await _submit_all(Coalescer(recorder.flush), range(3))
    assert all(isinstance(o, OSError) for o in outcomes.values())
    assert recorder.batches == [[0], [1, 2]]


async def test_a_caller_cancelled_before_its_flush_leaves_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    coalescer: Coalescer[int, int] = Coalescer(recorder.flush)
    results: list[int] = []

    async def keep(i: int) -> None:
        results.append(await coalescer.submit(i))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(keep, 0)
        await trio.testing.wait_all_tasks_blocked()
        with trio.CancelScope() as scope:
            scope.cancel()
            with pytest.raises(trio.Cancelled):
                await coalescer.submit(8)
        nursery.start_soon(keep, 2)
    assert recorder.batches == [[0], [2]]
    assert sorted(results) == [0, 20]


async def test_the_flusher_cancelled_midway_still_settles_its_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    coalescer: Coalescer[int, int] = Coalescer(recorder.flush)
    other: list[int] = []

    async def waiting() -> None:
        other.append(await coalescer.submit(2))

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(0.5):  # cancels the flusher while its flush sleeps 1 s
            async with trio.open_nursery() as inner:
                inner.start_soon(coalescer.submit, 0)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(waiting)
                await trio.sleep_forever()
    assert recorder.batches == [[0], [2]]
    assert other == [20]
