"""Group commit of concurrent appends (`AppendBatcher`), over a recording fake write."""

from collections.abc import Sequence

import pytest
import trio
import trio.testing

from dkron_trio.backends.batching import AppendBatcher
from dkron_trio.store.backend import BackendError, Lease

LEASE = Lease("a", 7)


class Log:
    def __init__(self) -> None:
        self.batches: list[tuple[list[bytes], Lease | None]] = []
        self.fail: BackendError | None = None

    async def write(self, batch: Sequence[bytes], fence: Lease | None) -> int:
        await trio.sleep(0.01)  # one round trip, while more appends queue up
        if self.fail is not None:
            raise self.fail
        first = sum(len(b) for b, _ in self.batches) + 1
        self.batches.append((list(batch), fence))
        return first


async def test_concurrent_appends_share_transactions_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    batcher = AppendBatcher(log.write, max_entries=4, max_bytes=1000)
    got: dict[bytes, int] = {}

    async def append(data: bytes, fence: Lease | None) -> None:
        got[data] = await batcher.append(data, fence)

    async with trio.open_nursery() as nursery:
        for n in range(10):
            nursery.start_soon(append, b"%d" % n, LEASE if n in (5, 6) else None)
            await trio.lowlevel.checkpoint()
    flat = [data for batch, _ in log.batches for data in batch]
    assert sorted(got.values()) == list(range(1, 11))
    assert [flat[i - 1] for i in sorted(got.values())] == sorted(got, key=got.__getitem__)
    assert len(log.batches) < 10
    assert all(len(batch) <= 4 for batch, _ in log.batches)
    for batch, fence in log.batches:
        assert all((data in (b"5", b"6")) == (fence == LEASE) for data in batch)


async def test_a_failed_transaction_fails_every_append_in_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    log.fail = BackendError("down")
    batcher = AppendBatcher(log.write, max_entries=64, max_bytes=1000)
    errors: list[BaseException] = []

    async def append(n: int) -> None:
        with pytest.raises(BackendError) as caught:
            await batcher.append(b"%d" % n, None)
        errors.append(caught.value)

    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(append, n)
    assert len(errors) == 3
    log.fail = None
    assert await batcher.append(b"ok", None) == 1


async def test_a_cancelled_flusher_hands_over_to_the_waiters(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log = Log()
    batcher = AppendBatcher(log.write, max_entries=1, max_bytes=1000)
    got: list[int] = []

    async def append(data: bytes) -> None:
        got.append(await batcher.append(data, None))

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(0.005):
            nursery.start_soon(append, b"second")
            await batcher.append(b"first", None)  # flushes, then is cancelled mid-write
    assert got == [1]  # the waiter flushed its own append after the flusher was cancelled
    assert [batch for batch, _ in log.batches] == [[b"second"]]
    assert await batcher.append(b"third", None) == 2
