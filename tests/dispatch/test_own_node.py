"""In a cluster a server's own runs go through its worker like any other node's: the worker's
journal is what lets a later leader know an attempt was received, so a leadership change
never runs one twice (the old leader running it here while the new one orders it again)."""

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import attrs
import trio
from trio.testing import MockClock

from dkron_trio.clock import WallClock
from dkron_trio.execution import Execution, ExecutionStatus
from dkron_trio.executors.base import ExecutionRequest, ExecutionResult, OutputCallback
from dkron_trio.job import Job
from dkron_trio.runs import RunManager
from dkron_trio.store.memory import MemoryStore
from tests.store.helpers import T0, job

if TYPE_CHECKING:
    from dkron_trio.dispatch.remote import RemoteRuns


class LocalExecutorUsed(AssertionError):
    pass


class Refuse:
    async def run(self, req: ExecutionRequest, on_output: OutputCallback) -> ExecutionResult:
        raise LocalExecutorUsed(req.execution_id)


@attrs.define
class FakeRemote:
    """Stands in for `RemoteRuns`: records what was ordered and asked."""

    store: MemoryStore
    ordered: list[str] = attrs.Factory(list)
    asked: list[str] = attrs.Factory(list)

    async def run(
        self, job: Job, execution: Execution, on_output: Callable[[bytes], None]
    ) -> Execution:
        self.ordered.append(execution.id)
        done = attrs.evolve(
            execution, status=ExecutionStatus.SUCCESS, success=True, finished_at=T0
        )
        await self.store.put_execution(done)
        return done

    async def status(self, execution: Execution) -> Execution | None:
        self.asked.append(execution.id)
        return attrs.evolve(execution, status=ExecutionStatus.SUCCESS, finished_at=T0)


async def test_own_runs_and_their_take_over_go_through_the_worker(
    autojump_clock: MockClock,
) -> None:
    store = MemoryStore()
    await store.set_job(job("a"))
    remote = FakeRemote(store)
    runs = RunManager(
        store,
        WallClock.starting_at(T0),
        "s1",
        {},
        lambda _name: Refuse(),
        remote=cast("RemoteRuns", remote),
        nodes=lambda: [("s1", {})],
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(runs.run)
        stored = await store.get_job("a")
        [planned] = runs.plan_attempts(stored, T0)
        assert planned.node_name == "s1"
        await store.put_execution(planned)
        runs.start_planned(stored, planned)
        await runs.wait_idle()
        assert remote.ordered == [planned.id]

        [orphan] = runs.plan_attempts(stored, T0)
        await store.put_execution(orphan)
        await runs.take_over(orphan, stored)  # an earlier leader's, on this very node
        await runs.wait_idle()
        assert remote.asked == [orphan.id]
        assert (await store.get_execution("a", orphan.id)).status is ExecutionStatus.SUCCESS
        nursery.cancel_scope.cancel()
