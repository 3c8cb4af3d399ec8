"""LogTail: follows the backend's command log into the local replica.

Every server applies the same entries in the same order through the same state machine
(`StoreStateMachine`), so its `state.db` is a replica of the log, as a Raft follower's is.
Entries come in batches, each applied in one store transaction with its last index. A
server whose replica is behind the first entry the backend kept (compacted) restores the
backend's snapshot first.

Writers learn their results here: `collect()` keeps the result of every entry applied while
it is open, so an appender that only learns its index after appending cannot miss it. A
writer `offer`s its own entry, applied at once when it is the next one (one backend read
fewer per write); otherwise the reader brings it with the entries before it.
`sync()` waits for a full pass that started after the call (linearizable reads).
"""

import contextlib
from collections.abc import Iterator

import attrs
import trio

from dkron_trio.fsm import StoreStateMachine
from dkron_trio.logs import get_logger
from dkron_trio.raft.types import ConfState, Entry, Snapshot, SnapshotMeta
from dkron_trio.store.backend import BackendError, LogDriver
from dkron_trio.store.base import ClusterUnavailable
from dkron_trio.store.replica import ReplicaStore

log = get_logger(__name__)

BATCH = 256
"""Entries read and applied per store transaction."""
MAX_WAIT = 1.0
"""Longest wait for new entries before polling again."""
RETRY = 0.5
"""Pause after the backend failed before trying again."""


@attrs.define(eq=False)
class Results:
    """Results of the entries applied while a `collect()` is open, by index."""

    _by_index: dict[int, object] = attrs.field(factory=dict)

    def add(self, index: int, result: object) -> None:
        self._by_index[index] = result

    def __contains__(self, index: int) -> bool:
        return index in self._by_index

    def get(self, index: int) -> object:
        if index not in self._by_index:
            return ClusterUnavailable(
                f"entry {index} was committed but reached this server in a snapshot: "
                "its result is unknown"
            )
        return self._by_index[index]


@attrs.define(eq=False)
class LogTail:
    """Create, `await nursery.start(tail.run)`; the replica then follows the log."""

    _driver: LogDriver
    _store: ReplicaStore
    _fsm: StoreStateMachine
    _applied: int = 0
    _progress: trio.Event = attrs.field(factory=trio.Event)
    _kicked: trio.Event = attrs.field(factory=trio.Event)
    _collectors: list[Results] = attrs.field(factory=list)
    _passes_started: int = 0
    _passes_done: int = 0
    _applying: trio.Lock = attrs.field(factory=trio.Lock)
    """Held while entries are applied: the log's reader and `offer` take turns."""
    _running: bool = False
    _offered: dict[int, bytes] = attrs.field(factory=dict)

    @property
    def applied(self) -> int:
        return self._applied

    def kick(self) -> None:
        """Read the log now instead of after the current wait (a local append)."""
        self._kicked.set()

    @contextlib.contextmanager
    def collect(self) -> Iterator[Results]:
        results = Results()
        self._collectors.append(results)
        try:
            yield results
        finally:
            self._collectors.remove(results)

    async def offer(self, index: int, data: bytes) -> None:
        """An entry this server just appended (the backend said ``data`` is its entry
        ``index``): applied without reading it back once the entries before it are. Whoever
        applies next takes every offered entry that follows on, in one batch."""
        if not self._running or index <= self._applied:
            return
        self._offered[index] = data
        if self._applying.locked():
            return  # the holder takes it when done, or the reader brings it
        async with self._applying:
            await self._apply_offered()

    async def wait_applied(self, index: int) -> None:
        if self._applied >= index:
            return
        self.kick()
        while self._applied < index:
            await self._progress.wait()

    async def sync(self) -> None:
        """Return after a complete pass over the log that started after this call."""
        target = self._passes_started + 1
        self.kick()
        while self._passes_done < target:
            await self._progress.wait()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._applied = await self._store.applied_index()
        self._running = True
        task_status.started()
        while True:
            try:
                await self._one_pass()
            except BackendError as exc:
                log.warning("backend log unreadable, retrying", error=str(exc))
                await trio.sleep(RETRY)
                continue
            await self._wait_for_more()

    async def _one_pass(self) -> None:
        self._passes_started += 1
        started = self._passes_started
        self._kicked = trio.Event()
        while True:
            try:
                entries = await self._driver.entries(self._applied, BATCH)
            except BackendError:
                if not await self._restore_snapshot():
                    raise
                continue
            if not entries:
                break
            async with self._applying:  # entries offered meanwhile are applied already
                fresh = [Entry(0, e.index, data=e.data) for e in entries if e.index > self._applied]
                if fresh:
                    await self._apply(fresh)
                await self._apply_offered()
            if len(entries) < BATCH:
                break  # that read reached the end of the log as it was then
        self._passes_done = started
        self._notify()

    async def _apply(self, batch: list[Entry]) -> None:
        """Apply consecutive entries starting right after the applied index."""
        results = await self._fsm.apply(batch)
        for collector in self._collectors:
            for entry, result in zip(batch, results, strict=True):
                collector.add(entry.index, result)
        self._applied = batch[-1].index
        for index in [i for i in self._offered if i <= self._applied]:
            del self._offered[index]
        self._notify()

    async def _apply_offered(self) -> None:
        """Apply the offered entries that follow on from the applied index (while more are
        offered during each apply)."""
        while self._applied + 1 in self._offered:
            batch = []
            index = self._applied + 1
            while index in self._offered:
                batch.append(Entry(0, index, data=self._offered.pop(index)))
                index += 1
            await self._apply(batch)

    async def _restore_snapshot(self) -> bool:
        """Load the backend's snapshot if it is ahead of the replica (entries compacted)."""
        snapshot = await self._driver.load_snapshot()
        async with self._applying:
            if snapshot is None or snapshot[0] <= self._applied:
                return False
            index, image = snapshot
            log.warning("replica behind the backend's log, restoring its snapshot", index=index)
            await self._fsm.restore(Snapshot(SnapshotMeta(index, 0, ConfState()), image))
            self._applied = index
            self._offered.clear()
            self._notify()
            return True

    async def _wait_for_more(self) -> None:
        async with trio.open_nursery() as nursery:

            async def backend() -> None:
                try:
                    await self._driver.wait_entries(self._applied, MAX_WAIT)
                except BackendError as exc:
                    log.warning("backend watch failed", error=str(exc))
                    await trio.sleep(RETRY)
                nursery.cancel_scope.cancel()

            async def local() -> None:
                await self._kicked.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(backend)
            nursery.start_soon(local)

    def _notify(self) -> None:
        self._progress.set()
        self._progress = trio.Event()
