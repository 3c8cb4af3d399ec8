"""The worker's cache of decoded jobs stays bounded, decodes an evicted job again from the
next order that carries it, and never makes a run use another definition of its job than
the one its order carries."""

from pathlib import Path
from typing import cast

import attrs
import trio
import trio.testing

from dkron_trio.clock import WallClock
from dkron_trio.config import HostPort
from dkron_trio.dispatch import wire
from dkron_trio.dispatch.job_cache import JobCache
from dkron_trio.dispatch.journal import Journal
from dkron_trio.dispatch.pool import PeerPool
from dkron_trio.dispatch.worker import Worker
from dkron_trio.execution import ExecutionStatus
from dkron_trio.executors.base import ExecutionRequest, ExecutionResult, OutputCallback
from dkron_trio.job import Job
from dkron_trio.rpc.server import RequestHandler, RpcServer
from tests.store.helpers import T0, execution, job

LEADER = "127.0.0.1:2"


@attrs.define
class _CountingDecoder:
    """`wire.decode_job`, counting the decodes of each encoded job."""

    counts: dict[bytes, int] = attrs.Factory(dict)

    def __call__(self, data: bytes) -> Job:
        self.counts[data] = self.counts.get(data, 0) + 1
        return wire.decode_job(data)


def _encoded(name: str, command: str = "true") -> bytes:
    return wire.encode_job_for_order(job(name, executor_config={"command": command}))


def test_the_cache_stays_bounded() -> None:
    cache = JobCache(8)
    sizes = []
    for n in range(100):
        cache.job(_encoded(f"j{n}"))
        sizes.append(len(cache))
    assert max(sizes) == 8
    assert min(sizes[8:]) == 7  # a full cache drops its oldest quarter, then takes one


def test_an_evicted_job_is_decoded_again_when_ordered() -> None:
    decoder = _CountingDecoder()
    cache = JobCache(4, decoder)
    a = _encoded("a")
    first = cache.job(a)
    assert cache.job(a) is first
    assert decoder.counts[a] == 1
    for n in range(4):
        cache.job(_encoded(f"other{n}"))
    assert cache.job(a) == first
    assert decoder.counts[a] == 2


@attrs.define
class _Rpc:
    handlers: dict[str, RequestHandler] = attrs.Factory(dict)

    def on_request(self, kind: str, handler: RequestHandler) -> None:
        self.handlers[kind] = handler


@attrs.define
class _Pool:
    """Takes every report at once and drops streamed output."""

    def send_nowait(self, address: HostPort, kind: str, body: bytes) -> None:
        pass

    async def call(self, address: HostPort, kind: str, body: bytes) -> bytes:
        return b""


@attrs.define
class _Recorder:
    """An executor that reports each run's job and command."""

    runs: trio.MemorySendChannel[tuple[str, str]]

    async def run(self, req: ExecutionRequest, on_output: OutputCallback) -> ExecutionResult:
        await self.runs.send((req.job_name, str(req.executor_config["command"])))
        return ExecutionResult(success=True, output="", exit_code=0, error="")


async def test_a_run_of_an_evicted_job_runs_the_definition_its_order_carries(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    decoder = _CountingDecoder()
    cache = JobCache(4, decoder)
    send, runs = trio.open_memory_channel[tuple[str, str]](0)
    journal = await Journal.open(tmp_path / "agent.db")
    worker = Worker(
        "w1",
        journal,
        WallClock.starting_at(T0),
        cast("PeerPool", _Pool()),
        lambda: [],
        executors=lambda _name: _Recorder(send),
        jobs=cache,
    )
    rpc = _Rpc()
    worker.register(cast("RpcServer", rpc))
    on_run = rpc.handlers[wire.RUN]
    orders = 0

    async def order(j: Job) -> tuple[str, str]:
        nonlocal orders
        orders += 1
        attempt = execution(j.name, orders, ExecutionStatus.RUNNING, node="w1")
        answers = await on_run(wire.encode_orders([wire.Order(1, j, attempt, LEADER)]))
        assert wire.decode_answers(answers) == [None]
        with trio.fail_after(60):
            return await runs.receive()

    v1 = job("a", executor_config={"command": "echo v1"})
    v2 = attrs.evolve(v1, executor_config={"command": "echo v2"})
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        assert await order(v1) == ("a", "echo v1")
        assert await order(v2) == ("a", "echo v2")  # v1 still cached
        for n in range(4):
            assert await order(job(f"other{n}")) == (f"other{n}", "true")
        assert await order(v2) == ("a", "echo v2")
        assert len(cache) <= 4
        assert decoder.counts[wire.encode_job_for_order(v2)] == 2  # evicted, decoded again
        nursery.cancel_scope.cancel()
    await journal.close()
