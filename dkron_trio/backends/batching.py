"""Group commit for a driver's appends: concurrent appends of one process share a backend
transaction.

Without it every concurrent appender races on the log's head and all but one retry, so n
writers cost n^2 transactions. Here one caller at a time flushes: it takes the queued
appends (those with the same fence, up to the batch limits) and writes them with one call
of ``write_batch``; the others wait for their outcome. A batch whose write fails, or whose
flusher is cancelled mid-write, fails for all of its appends with the same error (its
outcome is unknown to all of them alike).
"""

from collections.abc import Awaitable, Callable, Sequence

import attrs
import trio

from dkron_trio.store.backend import BackendError, Lease

WriteBatch = Callable[[Sequence[bytes], Lease | None], Awaitable[int]]
"""Appends the entries in order in one transaction; returns the first one's index."""


@attrs.define(eq=False)
class _Append:
    data: bytes
    fence: Lease | None
    index: int | None = None
    error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.index is not None or self.error is not None


@attrs.define(eq=False)
class AppendBatcher:
    _write_batch: WriteBatch
    _max_entries: int
    _max_bytes: int
    _queue: list[_Append] = attrs.field(factory=list)
    _flushing: bool = False
    _flushed: trio.Event = attrs.field(factory=trio.Event)

    async def append(self, data: bytes, fence: Lease | None) -> int:
        item = _Append(data, fence)
        self._queue.append(item)
        while not item.done:
            if self._flushing:
                await self._flushed.wait()
                continue
            self._flushing = True
            try:
                await self._flush()
            finally:
                self._flushing = False
                self._notify()
        if item.error is not None:
            raise item.error
        assert item.index is not None
        return item.index

    async def _flush(self) -> None:
        while self._queue:
            batch = self._take()
            try:
                first = await self._write_batch([a.data for a in batch], batch[0].fence)
            except BackendError as exc:
                for item in batch:
                    item.error = exc
            except BaseException:
                for item in batch:
                    item.error = BackendError("append interrupted: outcome unknown")
                raise
            else:
                for offset, item in enumerate(batch):
                    item.index = first + offset
            self._notify()

    def _take(self) -> list[_Append]:
        """The longest prefix of the queue with one fence, within the limits (at least one)."""
        first = self._queue[0]
        size, count = 0, 0
        for item in self._queue:
            if count and (
                item.fence != first.fence
                or count >= self._max_entries
                or size + len(item.data) > self._max_bytes
            ):
                break
            size += len(item.data)
            count += 1
        batch, self._queue = self._queue[:count], self._queue[count:]
        return batch

    def _notify(self) -> None:
        self._flushed.set()
        self._flushed = trio.Event()
