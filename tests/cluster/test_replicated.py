"""ReplicatedStore: a leader's own decisions (plans, cursors) are never forwarded."""

import attrs

from dkron_trio.cluster.replicated import ReplicatedStore
from dkron_trio.commands import Command, RecordPlan, SetCursor, SetJob
from dkron_trio.store.memory import MemoryStore
from tests.store.helpers import T0, job


@attrs.define
class RecordingLog:
    calls: list[tuple[type, bool]] = attrs.field(factory=list)

    async def apply(self, cmd: Command, *, forward: bool = True) -> object:
        self.calls.append((type(cmd), forward))
        return job("a") if isinstance(cmd, SetJob) else 7

    async def linearize(self) -> None:
        return None


async def test_plans_and_cursors_stay_on_the_leader_other_writes_forward() -> None:
    log = RecordingLog()
    store = ReplicatedStore(MemoryStore(), log)
    await store.set_job(job("a"))
    assert await store.record_plan("a", T0, [], []) == 7
    await store.set_cursor("a", T0)
    assert log.calls == [(SetJob, True), (RecordPlan, False), (SetCursor, False)]
