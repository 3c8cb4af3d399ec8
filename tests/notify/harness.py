"""Shared pieces of the notification tests: a real SMTP server (aiosmtpd) and a real webhook
receiver on 127.0.0.1 (fixtures in conftest.py), and a RunManager with the memory store
feeding ExecutionOutputs."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes
from typing import Any

import attrs
import trio
from aiosmtpd.smtp import SMTP, Envelope, Session

from dkron_trio.clock import WallClock
from dkron_trio.executors.base import ExecutionRequest, ExecutionResult, Executor, OutputCallback
from dkron_trio.job import Job
from dkron_trio.notify.config import NotifyConfig
from dkron_trio.notify.service import ExecutionOutputs
from dkron_trio.runs import RunManager
from dkron_trio.store.memory import MemoryStore

OUTPUT = 'line "one"\n\\two {{.JobName}}\n'


@attrs.define
class Mailbox:
    messages: list[tuple[Envelope, Any]] = attrs.field(factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append((envelope, message_from_bytes(envelope.content)))
        return "250 OK"


@attrs.define
class Receiver:
    """A webhook receiver: answers 500 to the first ``fail_first`` requests, then 200."""

    port: int
    fail_first: int = 0
    requests: list[tuple[dict[str, str], bytes]] = attrs.field(factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@attrs.define
class ScriptedExecutor:
    """Fails jobs whose name starts with ``fail`` or is in ``failing``; always prints
    OUTPUT."""

    failing: set[str] = attrs.field(factory=set)

    async def run(self, req: ExecutionRequest, on_output: OutputCallback) -> ExecutionResult:
        ok = not req.job_name.startswith("fail") and req.job_name not in self.failing
        return ExecutionResult(ok, OUTPUT, 0 if ok else 1, "" if ok else "failed")


@attrs.define
class World:
    store: MemoryStore
    runs: RunManager
    outputs: ExecutionOutputs
    executor: ScriptedExecutor

    async def job(self, **fields: Any) -> Job:
        base: dict[str, Any] = {
            "schedule": "@manually",
            "executor": "shell",
            "executor_config": {"command": "true"},
        }
        return await self.store.set_job(Job.from_json(base | fields, now=WallClock.system().now()))

    async def run_once(self, name: str) -> None:
        """Run the job by hand and wait for its attempts and their notifications."""
        await self.runs.start_manual_run(await self.store.get_job(name))
        with trio.fail_after(20):
            await self.runs.wait_idle()
            await self.outputs.wait_idle()


@asynccontextmanager
async def open_world(config: NotifyConfig) -> AsyncIterator[World]:
    store = MemoryStore()
    executor = ScriptedExecutor()

    def executors(name: str) -> Executor:
        return executor

    runs = RunManager(store, WallClock.system(), "node1", {}, executors)
    outputs = ExecutionOutputs.create(config, "node1", store)
    runs.add_finished_listener(outputs.on_finished)
    runs.add_started_listener(outputs.on_started)
    async with trio.open_nursery() as nursery:
        await nursery.start(runs.run)
        await nursery.start(outputs.run)
        yield World(store, runs, outputs, executor)
        nursery.cancel_scope.cancel()
