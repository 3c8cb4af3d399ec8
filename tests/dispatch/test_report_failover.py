"""Reports of runs a dead leader ordered reach another server at once: after one batch to
the dead server fails, the reports queued behind it and those that come later go elsewhere
(while gossip does not see it alive again), instead of each batch waiting out its own
timeout."""

from typing import cast

import attrs
import trio
import trio.testing

from dkron_trio.clock import WallClock
from dkron_trio.config import HostPort
from dkron_trio.dispatch import wire
from dkron_trio.dispatch.journal import Journal
from dkron_trio.dispatch.pool import PeerPool
from dkron_trio.dispatch.worker import Worker
from dkron_trio.execution import ExecutionStatus
from tests.store.helpers import T0, execution

DEAD = HostPort("127.0.0.1", 1)
ALIVE = HostPort("127.0.0.1", 2)


@attrs.define
class _Pool:
    """The dead server never answers; the live one takes every batch after 50 ms."""

    taken: list[tuple[float, int]] = attrs.field(factory=list)
    dead_calls: int = 0

    async def call(self, address: HostPort, kind: str, body: bytes) -> bytes:
        assert kind == wire.REPORT
        if address == DEAD:
            self.dead_calls += 1
            await trio.sleep_forever()
        await trio.sleep(0.05)
        self.taken.append((trio.current_time(), len(wire.decode_executions(body))))
        return b""


async def test_reports_for_a_dead_server_go_elsewhere_after_one_failed_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    pool = _Pool()
    alive = [DEAD, ALIVE]
    worker = Worker(
        "w1",
        cast("Journal", None),
        WallClock.starting_at(T0),
        cast("PeerPool", pool),
        lambda: alive,
    )
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for n in range(3000):
            report = execution("a", n, ExecutionStatus.SUCCESS, node="w1")
            nursery.start_soon(worker._report, report, DEAD)
            if n % 100 == 99:
                await trio.sleep(1)  # reports keep coming while the first batch hangs
            if n == 500:
                alive.remove(DEAD)  # gossip's failure detection
    assert sum(count for _, count in pool.taken) == 3000
    assert pool.dead_calls == 1
    assert max(at for at, _ in pool.taken) - start < 31  # the last reports came at 30 s
