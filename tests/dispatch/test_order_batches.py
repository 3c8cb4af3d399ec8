"""Orders to one worker travel in batches bounded in count and in bytes: many small orders
share one RPC (one in flight per worker), and big jobs split a batch before the RPC frame or
the worker's journal transaction grows without bound."""

from typing import cast

import attrs
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from dkron_trio.clock import WallClock
from dkron_trio.config import HostPort
from dkron_trio.dispatch import wire
from dkron_trio.dispatch.pool import PeerPool
from dkron_trio.dispatch.remote import _ORDER_BATCH_BYTES, RemoteRuns, order_weight
from dkron_trio.execution import Execution, ExecutionStatus
from dkron_trio.job import Job
from dkron_trio.store.memory import MemoryStore
from tests.store.helpers import T0, execution, job

WORKER = HostPort("127.0.0.1", 1)


@attrs.define
class _Pool:
    """Answers every order RPC with acceptance; remembers each body's order count and size."""

    calls: list[tuple[int, int]] = attrs.field(factory=list)

    async def call(self, address: HostPort, kind: str, body: bytes) -> bytes:
        assert kind == wire.RUN
        count = len(wire.decode_orders(body))
        self.calls.append((count, len(body)))
        await trio.sleep(0.01)  # a round trip: orders meanwhile queue for the next batch
        return wire.encode_answers([None] * count)


def _remote(pool: _Pool) -> RemoteRuns:
    return RemoteRuns(
        cast("PeerPool", pool),
        MemoryStore(),
        WallClock.starting_at(T0),
        lambda node: WORKER,
        lambda: 1,
        "127.0.0.1:2",
    )


async def _order_all(remote: RemoteRuns, jobs: list[Job]) -> None:
    async with trio.open_nursery() as nursery:
        for n, j in enumerate(jobs):
            attempt = execution(j.name, n, ExecutionStatus.RUNNING, node="w1")
            nursery.start_soon(remote._order, wire.Order(1, j, attempt, "127.0.0.1:2"))


async def test_many_small_orders_share_an_rpc(autojump_clock: trio.testing.MockClock) -> None:
    pool = _Pool()
    await _order_all(_remote(pool), [job(f"j{i}") for i in range(600)])
    assert [count for count, _ in pool.calls] == [1, 599]  # the first went alone


async def test_big_jobs_split_a_batch_by_bytes(autojump_clock: trio.testing.MockClock) -> None:
    pool = _Pool()
    big = [job(f"j{i}", executor_config={"command": "x" * 50_000}) for i in range(60)]
    await _order_all(_remote(pool), big)
    assert sum(count for count, _ in pool.calls) == 60
    assert len(pool.calls) >= 3
    assert all(size <= _ORDER_BATCH_BYTES for _, size in pool.calls)


@settings(max_examples=200, deadline=None)
@given(
    command=st.text(max_size=2000),
    name=st.text(alphabet=st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1),
    node=st.text(min_size=1, max_size=64),
)
def test_an_order_weighs_at_least_its_encoded_size(command: str, name: str, node: str) -> None:
    j = job(name, executor_config={"command": command})
    attempt: Execution = attrs.evolve(
        execution(name, 3, ExecutionStatus.RUNNING, node=node),
        id=f"1795405359698021000-{node}",
        fence=2**40,
    )
    order = wire.Order(2**40, j, attempt, "127.0.0.1:65535")
    job_bytes = wire.encode_job_for_order(j)
    assert len(wire.encode_orders([order])) <= order_weight(order, job_bytes)
