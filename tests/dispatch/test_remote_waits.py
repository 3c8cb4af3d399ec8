"""RemoteRuns waiting for outcomes (MockClock): one task looks at the nodes' reachability,
however many attempts wait, and an attempt whose node stays unreachable past the lease is
recorded lost."""

from typing import cast

import attrs
import trio
import trio.testing

from dkron_trio.clock import WallClock
from dkron_trio.config import HostPort
from dkron_trio.dispatch.pool import PeerPool
from dkron_trio.dispatch.remote import RemoteRuns
from dkron_trio.execution import Execution, ExecutionStatus
from dkron_trio.store.memory import MemoryStore
from tests.store.helpers import T0, execution, job


class _Steps(trio.abc.Instrument):
    def __init__(self) -> None:
        self.count = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.count += 1


async def test_waiting_attempts_do_not_poll_and_an_unreachable_node_loses_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryStore()
    await store.set_job(job("a"))
    attempts = [execution("a", n, ExecutionStatus.RUNNING, node="w1") for n in range(100)]
    for attempt in attempts:
        await store.put_execution(attempt)
    reachable = True
    looks: list[str] = []

    def address(node: str) -> HostPort | None:
        looks.append(node)
        return HostPort("127.0.0.1", 1) if reachable else None

    remote = RemoteRuns(
        cast("PeerPool", None), store, WallClock.starting_at(T0), address, lambda: 1, "x", 5.0
    )
    outcomes: list[Execution] = []

    async def adopt(attempt: Execution) -> None:
        outcomes.append(await remote.adopt(attempt, lambda _chunk: None))

    async with trio.open_nursery() as nursery:
        await nursery.start(remote.watch)
        for attempt in attempts:
            nursery.start_soon(adopt, attempt)
        await trio.sleep(0.5)
        steps = _Steps()
        trio.lowlevel.add_instrument(steps)
        await trio.sleep(10)
        trio.lowlevel.remove_instrument(steps)
        assert outcomes == []
        assert steps.count < 50  # the watcher once a second, not every attempt
        assert len(looks) <= 11  # about once a second for the node
        finished = attrs.evolve(
            attempts[0], status=ExecutionStatus.SUCCESS, success=True, finished_at=T0
        )
        remote.executions_applied([finished])
        await trio.sleep(0.1)
        assert [e.status for e in outcomes] == [ExecutionStatus.SUCCESS]
        reachable = False
        await trio.sleep(7)
        assert len(outcomes) == 100
        assert {e.status for e in outcomes[1:]} == {ExecutionStatus.LOST}
        stored = await store.running_executions()
        assert stored == [attempts[0]]  # the committed outcome reached only the waiter
        nursery.cancel_scope.cancel()
