"""Concurrent HTTP clients writing, deleting and reading jobs, every operation recorded.

An answer the client got is recorded as it is: OK (201/200, or 404 from a delete or a
consistent read, both decided by the leader), or FAIL when the write certainly never
reached a log (the connection was refused, the server had no leader to send it to). A
timeout, a broken connection or a 503 after the write was sent is UNKNOWN: it may have
taken effect. A read that did not answer is FAIL, since a read changes nothing.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import attrs
import httpx
import trio

from dkron_trio.chaos.history import JobInput, JobOp, JobOutput
from dkron_trio.chaos.nodes import Node
from dkron_trio.logs import get_logger
from dkron_trio.sim.linearizability import HistoryRecorder

log = get_logger(__name__)

_NOT_SENT = ("no cluster leader", "New job submissions are currently paused")
"""503 messages the API answers before a write is proposed or forwarded."""


def workload_job(name: str, value: str) -> dict[str, Any]:
    """A job the workload stores: never scheduled; its displayname is the written value."""
    return {
        "name": name,
        "displayname": value,
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {"command": "true"},
    }


@attrs.define
class Workload:
    """`clients` tasks issue operations on `names` against random servers until stopped."""

    servers: Sequence[Node]
    names: tuple[str, ...]
    seed: int
    clients: int = 4
    timeout: float = 5.0
    pause: float = 0.05
    recorder: HistoryRecorder[JobInput, JobOutput] = attrs.field(factory=HistoryRecorder)
    outcomes: Counter[str] = attrs.field(factory=Counter)
    unexpected: list[str] = attrs.field(factory=list)

    async def run(self, stop: trio.Event) -> None:
        async with trio.open_nursery() as nursery:
            for client in range(self.clients):
                nursery.start_soon(self._client, client, stop)

    async def _client(self, client: int, stop: trio.Event) -> None:
        rng = random.Random(self.seed * 1000 + client)
        count = 0
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            while not stop.is_set():
                count += 1
                answered = await self._one(client, http, rng, f"c{client}-{count}")
                # Back off after a failure: a dead server refuses in microseconds, and a
                # client spinning on it would fill the history with noise.
                await trio.sleep(rng.uniform(0, self.pause if answered else 10 * self.pause))

    async def _one(
        self, client: int, http: httpx.AsyncClient, rng: random.Random, value: str
    ) -> bool:
        """Issue one operation and record it; False when it got no definite answer."""
        name = rng.choice(self.names)
        draw = rng.random()
        if draw < 0.4:
            op_input = JobInput(JobOp.PUT, name, value)
        elif draw < 0.55:
            op_input = JobInput(JobOp.DELETE, name)
        else:
            op_input = JobInput(JobOp.GET, name)
        server = rng.choice(self.servers)
        handle = self.recorder.invoke(client, op_input, time.monotonic_ns())
        try:
            response = await self._send(http, server.url, op_input)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            self._fail(handle, op_input, "refused")
            return False
        except httpx.HTTPError as exc:
            self._unknown(handle, op_input, type(exc).__name__)
            return False
        return self._answer(handle, op_input, response, time.monotonic_ns())

    async def _send(self, http: httpx.AsyncClient, url: str, op_input: JobInput) -> httpx.Response:
        path = f"{url}/v1/jobs/{op_input.name}"
        match op_input.op:
            case JobOp.PUT:
                assert op_input.value is not None
                return await http.post(
                    f"{url}/v1/jobs", json=workload_job(op_input.name, op_input.value)
                )
            case JobOp.DELETE:
                return await http.delete(path)
            case JobOp.GET:
                return await http.get(path, params={"consistent": ""})

    def _answer(self, handle: int, op_input: JobInput, response: httpx.Response, now: int) -> bool:
        """Record the answer; True when it was definite (OK)."""
        status = response.status_code
        if status == 201 and op_input.op is JobOp.PUT:
            self._ok(handle, op_input, JobOutput(), now)
        elif status == 200 and op_input.op is not JobOp.PUT:
            self._ok(handle, op_input, JobOutput(response.json()["displayname"]), now)
        elif status == 404 and op_input.op is not JobOp.PUT:
            self._ok(handle, op_input, JobOutput(None), now)
        elif status >= 500 and op_input.op is not JobOp.GET:
            message = str(response.json().get("error", "")) if _is_json(response) else ""
            if status == 503 and message.startswith(_NOT_SENT):
                self._fail(handle, op_input, "503 before sending")
            else:
                self._unknown(handle, op_input, str(status))
            return False
        else:
            if status < 500:
                self.unexpected.append(f"{op_input} answered {status}: {response.text[:200]}")
            self._fail(handle, op_input, str(status))
            return False
        return True

    def _ok(self, handle: int, op_input: JobInput, output: JobOutput, now: int) -> None:
        self.recorder.ok(handle, output, now)
        self.outcomes[f"{op_input.op.value} ok"] += 1

    def _fail(self, handle: int, op_input: JobInput, why: str) -> None:
        self.recorder.fail(handle)
        self.outcomes[f"{op_input.op.value} fail"] += 1
        log.debug("operation failed", op=op_input.op.value, why=why)

    def _unknown(self, handle: int, op_input: JobInput, why: str) -> None:
        if op_input.op is JobOp.GET:
            self._fail(handle, op_input, why)
            return
        self.recorder.unknown(handle)
        self.outcomes[f"{op_input.op.value} unknown"] += 1
        log.debug("operation outcome unknown", op=op_input.op.value, why=why)


def _is_json(response: httpx.Response) -> bool:
    return str(response.headers.get("content-type", "")).startswith("application/json")
