"""ReplicatedStore: a leader's own decisions (plans, cursors) are never forwarded."""

import attrs

from dkron_trio.cluster.replicated import ReplicatedStore
from dkron_trio.commands import Command, RecordPlans, SetCursor, SetJob
from dkron_trio.store.base import PlanRecord, PlansRecorded
from dkron_trio.store.memory import MemoryStore
from tests.store.helpers import T0, job


@attrs.define
class RecordingLog:
    calls: list[tuple[type, bool]] = attrs.field(factory=list)

    async def apply(self, cmd: Command, *, forward: bool = True) -> object:
        self.calls.append((type(cmd), forward))
        if isinstance(cmd, RecordPlans):
            return PlansRecorded(7)
        return job("a") if isinstance(cmd, SetJob) else None

    async def linearize(self) -> None:
        return None


async def test_plans_and_cursors_stay_on_the_leader_other_writes_forward() -> None:
    log = RecordingLog()
    store = ReplicatedStore(MemoryStore(), log)
    await store.set_job(job("a"))
    assert await store.record_plans([PlanRecord("a", T0, [], [])]) == PlansRecorded(7)
    await store.set_cursor("a", T0)
    assert log.calls == [(SetJob, True), (RecordPlans, False), (SetCursor, False)]
