"""Test harness for the in-process API: the real app, run manager and scheduler over the
memory store, and a fake executor whose runs end when a test says so."""

from datetime import UTC, datetime
from typing import Any

import attrs
import trio
import trio.testing
from quart.typing import TestClientProtocol
from quart.wrappers import Response

from dkron_trio.clock import WallClock
from dkron_trio.executors.base import ExecutionRequest, ExecutionResult, Executor, OutputCallback
from dkron_trio.http.app import ApiApp, create_app
from dkron_trio.http.context import ApiDeps, Member, SingleNodeCluster
from dkron_trio.runs import RunManager
from dkron_trio.scheduler import Scheduler
from dkron_trio.store.base import Store
from dkron_trio.store.memory import MemoryStore

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NODE = "node1"
NODE_TAGS = {"role": "dkron", "server": "true", "dkron_server": "true", "region": "global"}


@attrs.define
class GateExecutor:
    """Writes each job's scripted output, then waits for the job's gate (if any) and ends
    with the scripted outcome."""

    outputs: dict[str, list[bytes]] = attrs.field(factory=dict)
    gates: dict[str, trio.Event] = attrs.field(factory=dict)
    feeds: dict[str, trio.MemoryReceiveChannel[bytes]] = attrs.field(factory=dict)
    failing: set[str] = attrs.field(factory=set)
    started: list[ExecutionRequest] = attrs.field(factory=list)

    def gate(self, job: str) -> trio.Event:
        return self.gates.setdefault(job, trio.Event())

    def feed(self, job: str) -> trio.MemorySendChannel[bytes]:
        """The job's next run writes what is sent here and ends when it is closed."""
        send, self.feeds[job] = trio.open_memory_channel[bytes](100)
        return send

    async def run(self, req: ExecutionRequest, on_output: OutputCallback) -> ExecutionResult:
        self.started.append(req)
        chunks = list(self.outputs.get(req.job_name, [b"ok\n"]))
        for chunk in chunks:
            on_output(chunk)
            await trio.lowlevel.checkpoint()
        feed = self.feeds.pop(req.job_name, None)
        if feed is not None:
            async for chunk in feed:
                chunks.append(chunk)
                on_output(chunk)
        gate = self.gates.get(req.job_name)
        if gate is not None:
            await gate.wait()
        ok = req.job_name not in self.failing
        text = b"".join(chunks).decode()
        return ExecutionResult(ok, text, 0 if ok else 1, "" if ok else "failed")


@attrs.define
class Api:
    client: TestClientProtocol
    app: ApiApp
    store: MemoryStore
    runs: RunManager
    scheduler: Scheduler
    executor: GateExecutor
    clock: WallClock
    leaves: list[datetime]

    async def put(self, **fields: Any) -> Response:
        """POST a job: shell ``true`` every hour unless told otherwise."""
        body: dict[str, Any] = {
            "schedule": "@every 1h",
            "executor": "shell",
            "executor_config": {"command": "true"},
        }
        return await self.client.post("/v1/jobs", json=body | fields)

    async def request(self, method: str, path: str, **kwargs: Any) -> Response:
        return await self.client.open(path, method=method, **kwargs)

    async def json(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = await self.request(method, path, **kwargs)
        return response.status_code, await response.get_json()


def make_deps(
    store: Store,
    runs: RunManager,
    scheduler: Scheduler,
    clock: WallClock,
    leaves: list[datetime],
    **overrides: Any,
) -> ApiDeps:
    fields: dict[str, Any] = {
        "store": store,
        "runs": runs,
        "scheduler": scheduler,
        "clock": clock,
        "cluster": SingleNodeCluster(Member(NODE, "127.0.0.1", 8946, NODE_TAGS)),
        "node_name": NODE,
        "version": "0.1.0",
        "node_tags": NODE_TAGS,
        "request_leave": lambda: leaves.append(clock.now()),
    }
    return ApiDeps(**(fields | overrides))


async def open_api(nursery: trio.Nursery, **overrides: Any) -> Api:
    """Start the run manager and scheduler in ``nursery`` and build the app around them."""
    store = MemoryStore()
    clock = WallClock.starting_at(T0)
    executor = GateExecutor()

    def executors(name: str) -> Executor:
        return executor

    runs = RunManager(store, clock, NODE, dict(NODE_TAGS), executors)
    scheduler = Scheduler(store, runs, clock)
    await nursery.start(runs.run)
    await nursery.start(scheduler.run)
    leaves: list[datetime] = []
    app = create_app(make_deps(store, runs, scheduler, clock, leaves, **overrides))
    return Api(app.test_client(), app, store, runs, scheduler, executor, clock, leaves)
