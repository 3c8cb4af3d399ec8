"""Following a running execution's output over a WebSocket.

Messages are JSON text frames: ``{"type": "output", "data": "..."}`` first with everything
produced so far, then one per new piece of output, and last ``{"type": "done",
"execution": {...}}`` with the finished execution, after which the server closes (1000).
An execution that already finished gets its whole output and the done message at once.

The output listener only appends to a bounded buffer and sets an event, so a slow client
never slows the job or grows memory past the output cap (it then misses the middle, as the
stored output does). A client that goes away cancels the handler (Quart's way of reporting
a closed connection); the ``finally`` removes the listener either way.
"""

import codecs
import json
from collections.abc import Awaitable, Callable

import attrs
import trio
from quart import websocket

from dkron_trio.execution import Execution
from dkron_trio.executors.config import OUTPUT_LIMIT_BYTES
from dkron_trio.http.router import ApiState
from dkron_trio.logs import get_logger

log = get_logger(__name__)

STORE_POLL_SECONDS = 0.25
"""How often to re-read an execution that runs elsewhere (no local output to wait on)."""

GOING_AWAY = 1001


@attrs.define
class OutputTail:
    """Output of one execution that arrived since the last `take`, at most the output cap."""

    _execution_id: str
    _pending: bytearray = attrs.field(factory=bytearray)
    _changed: trio.Event = attrs.field(factory=trio.Event)

    def on_output(self, execution_id: str, chunk: bytes) -> None:
        if execution_id != self._execution_id:
            return
        self._pending += chunk
        excess = len(self._pending) - OUTPUT_LIMIT_BYTES
        if excess > 0:
            del self._pending[:excess]
        self._changed.set()

    def take(self) -> bytes:
        data = bytes(self._pending)
        self._pending.clear()
        self._changed = trio.Event()
        return data

    async def wait(self) -> None:
        await self._changed.wait()


async def _first_of(*waits: Callable[[], Awaitable[object]]) -> None:
    """Return as soon as any of the awaitables returns."""
    async with trio.open_nursery() as nursery:

        async def one(wait: Callable[[], Awaitable[object]]) -> None:
            await wait()
            nursery.cancel_scope.cancel()

        for wait in waits:
            nursery.start_soon(one, wait)


async def _send(message: dict[str, object]) -> None:
    await websocket.send(json.dumps(message, ensure_ascii=False))


async def follow_execution(state: ApiState, execution: Execution) -> None:
    """Accept the WebSocket and stream ``execution``'s output until it finishes."""
    deps = state.deps
    tail = OutputTail(execution.id)
    deps.runs.add_output_listener(tail.on_output)
    try:
        await websocket.accept()
        finished = await _stream(state, tail, execution)
        if finished is None:
            await websocket.close(GOING_AWAY, "server shutting down")
            return
        await _send({"type": "done", "execution": finished.to_json()})
        await websocket.close(1000)
    finally:
        deps.runs.remove_output_listener(tail.on_output)
        log.debug("follow ended", job=execution.job_name, execution=execution.id)


async def _stream(state: ApiState, tail: OutputTail, execution: Execution) -> Execution | None:
    """Send the output; return the finished execution, or None if the server is stopping."""
    deps = state.deps
    store = deps.store
    finished = deps.runs.finished_event(execution.id)
    live = next((ex for ex in deps.runs.running() if ex.id == execution.id), None)
    if finished is None or live is None:
        while not execution.status.finished:
            with trio.move_on_after(STORE_POLL_SECONDS):
                await state.stopping.wait()
            if state.stopping.is_set():
                return None
            execution = await store.get_execution(execution.job_name, execution.id)
        await _send({"type": "output", "data": execution.output})
        return execution
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    await _send({"type": "output", "data": live.output})
    while not finished.is_set():
        await _first_of(tail.wait, finished.wait, state.stopping.wait)
        if state.stopping.is_set():
            return None
        text = decoder.decode(tail.take())
        if text:
            await _send({"type": "output", "data": text})
    rest = decoder.decode(tail.take(), final=True)
    if rest:
        await _send({"type": "output", "data": rest})
    return await store.get_execution(execution.job_name, execution.id)
