"""Three RaftNodes on a MemoryNetwork, each applying commands to its own MemoryStore through
StoreStateMachine: what the leader proposes ends up identical in all three stores."""

import random

import trio
import trio.testing

from dkron_trio.commands import PutExecution, RecordPlans, SetJob, encode_command
from dkron_trio.execution import ExecutionStatus, MissedTick, MissReason
from dkron_trio.fsm import StoreStateMachine
from dkron_trio.raft.node import RaftNode
from dkron_trio.raft.node_storage import MemoryNodeStorage
from dkron_trio.raft.transport import MemoryNetwork
from dkron_trio.store.base import JobNotFound, PlanRecord, PlansRecorded
from dkron_trio.store.memory import MemoryStore
from tests.raft_node.harness import VOTERS, InlineOffload, eventually
from tests.store.helpers import T0, execution, job

from .helpers import contents


async def test_proposals_reach_every_store(autojump_clock: trio.testing.MockClock) -> None:
    network = MemoryNetwork()
    stores = {i: MemoryStore() for i in (1, 2, 3)}
    nodes = {
        i: RaftNode(
            i,
            MemoryNodeStorage(VOTERS),
            network.transport(i),
            StoreStateMachine(stores[i]),
            rng=random.Random(i),
            offload=InlineOffload(),
        )
        for i in (1, 2, 3)
    }
    async with trio.open_nursery() as nursery:
        for node in nodes.values():
            await nursery.start(node.run)
        await eventually(lambda: sum(n.is_leader for n in nodes.values()) == 1)
        leader = next(n for n in nodes.values() if n.is_leader)
        await leader.barrier()

        stored = await leader.propose(encode_command(SetJob(job("a"))))
        assert stored == job("a")
        running = execution("a", 1, ExecutionStatus.RUNNING)
        missed = MissedTick("a", T0, MissReason.MISFIRE, T0)
        plan = PlanRecord("a", running.started_at, [missed], [running])
        recorded = await leader.propose(encode_command(RecordPlans((plan,))))
        assert isinstance(recorded, PlansRecorded)  # fence: the log index of the plans
        assert recorded.fence is not None and recorded.refused == frozenset()
        done = execution("a", 1, ExecutionStatus.SUCCESS)
        assert await leader.propose(encode_command(PutExecution(done))) is None
        refused = await leader.propose(encode_command(PutExecution(execution("b", 1))))
        assert isinstance(refused, JobNotFound)

        last = leader.applied
        await eventually(lambda: all(n.applied >= last for n in nodes.values()))
        views = [await contents(s) for s in stores.values()]
        assert views[0] == views[1] == views[2]
        assert views[0]["a/executions"] == [done]
        assert views[0]["a/missed"] == [missed]
        assert views[0]["a/cursor"] == running.started_at
        assert (await stores[1].get_job("a")).success_count == 1
        nursery.cancel_scope.cancel()
