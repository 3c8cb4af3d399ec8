"""The sending side towards one remote node: a bounded queue, a sender task, reconnects.

`run()` is the sender task. It dials only when something is queued, keeps the connection
while it works, and after a failure waits an exponential, jittered backoff before dialing
again; one-way frames queued meanwhile wait (or are dropped oldest-first, per the config's
overflow policy). Delivery is at most once: frames written to a connection that then breaks
are lost, and calls in flight on it fail with RpcUnavailable.
"""

from __future__ import annotations

import itertools
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from dkron_trio.config import HostPort
from dkron_trio.logs import get_logger
from dkron_trio.rpc.backoff import Backoff
from dkron_trio.rpc.config import RpcConfig
from dkron_trio.rpc.connection import FrameReader, StreamErrors, dial
from dkron_trio.rpc.counters import Counters, Metric
from dkron_trio.rpc.errors import RemoteError, RpcError, RpcTimeout, RpcUnavailable
from dkron_trio.rpc.framing import Frame, FrameError, FrameType, encode_frame
from dkron_trio.rpc.outbox import Outbox, PendingCall

if TYPE_CHECKING:
    import random

log = get_logger(__name__)


Dialer = Callable[[HostPort], Awaitable[trio.abc.Stream]]
"""Opens a stream to an address; raises one of StreamErrors on failure."""


class _ProtocolViolation(Exception):
    """The listener sent something other than a reply to a call of ours."""


class Peer:
    def __init__(
        self,
        address: HostPort,
        config: RpcConfig,
        rng: random.Random,
        *,
        counters: Counters | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        dialer: Dialer | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        """`dialer` replaces TCP (and TLS) dialing, e.g. with in-memory streams in tests;
        `on_lost` is called each time an established connection breaks."""
        self.address = address
        self.counters = counters if counters is not None else Counters()
        self._config = config
        self._backoff = Backoff(config, rng)
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._dial = dialer if dialer is not None else self._dial_tcp
        self._outbox = Outbox(config, self.counters)
        self._inflight: dict[int, PendingCall] = {}
        self._ids = itertools.count(1)
        self._connected = False
        self._on_lost = on_lost
        self._log = log.bind(peer=str(address))

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def queued(self) -> int:
        """Frames waiting to be written."""
        return len(self._outbox)

    def send_nowait(self, kind: str, body: bytes, *, urgent: bool = False) -> bool:
        """Queue a one-way frame. False only if the queue is full under the BLOCK policy.
        An urgent frame is written before every other queued frame (`Outbox`).

        Raises FrameError if the frame exceeds the size limit.
        """
        frame = self._encode(FrameType.ONEWAY, kind, 0, body)
        if urgent:
            self._outbox.put_urgent_nowait(frame)
            return True
        return self._outbox.put_nowait(frame)

    async def send(self, kind: str, body: bytes) -> None:
        """Queue a one-way frame, waiting for room under the BLOCK policy."""
        await self._outbox.put(self._encode(FrameType.ONEWAY, kind, 0, body))

    async def call(self, kind: str, body: bytes) -> bytes:
        """Send a request and return the reply's body.

        Raises RemoteError (the handler failed), RpcTimeout (no reply within the config's
        call_timeout, time spent connecting included; callers wanting less wrap the call in
        trio.fail_after) or RpcUnavailable (the connection broke after the request was written).
        """
        call_id = next(self._ids)
        pending = PendingCall(call_id, self._encode(FrameType.REQUEST, kind, call_id, body))
        self._outbox.put_call(pending)
        try:
            with trio.fail_after(self._config.call_timeout):
                reply = await pending.wait()
        except trio.TooSlowError:
            self.counters.add(Metric.CALL_TIMEOUTS)
            raise RpcTimeout(f"no reply from {self.address} to {kind!r}") from None
        finally:
            pending.abandoned = True
            self._inflight.pop(call_id, None)
        if reply.type is FrameType.ERROR:
            raise RemoteError(reply.body.decode("utf-8", "replace"))
        return reply.body

    def _encode(self, type_: FrameType, kind: str, call_id: int, body: bytes) -> bytes:
        return encode_frame(Frame(type_, kind, call_id, body), self._config.max_frame_size)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The sender task; runs until cancelled."""
        task_status.started()
        while True:
            await self._outbox.wait_nonempty()
            try:
                stream = await self._dial(self.address)
            except StreamErrors as exc:
                self.counters.add(Metric.CONNECT_FAILURES)
                delay = self._backoff.next_delay()
                self._log.debug("rpc connect failed", error=str(exc), retry_in=round(delay, 3))
                await trio.sleep(delay)
                continue
            self._backoff.reset()
            self.counters.add(Metric.CONNECTS)
            try:
                await self._serve(stream)
            except (*StreamErrors, FrameError, _ProtocolViolation) as exc:
                self.counters.add(Metric.CONNECTIONS_LOST)
                self._log.info("rpc connection lost", error=str(exc) or type(exc).__name__)
                if self._on_lost is not None:
                    self._on_lost()
            finally:
                self._connected = False
                self._fail_inflight()
                await trio.aclose_forcefully(stream)
            await trio.sleep(self._backoff.next_delay())

    async def _dial_tcp(self, address: HostPort) -> trio.abc.Stream:
        return await dial(address, self._config, self._ssl_context, self._server_hostname)

    async def _serve(self, stream: trio.abc.Stream) -> None:
        """Write and read until either side fails or the listener closes; raise why."""
        self._connected = True
        failures: list[Exception] = []
        async with trio.open_nursery() as nursery:

            async def guarded(part: Callable[[trio.abc.Stream], Awaitable[None]]) -> None:
                try:
                    await part(stream)
                except (*StreamErrors, FrameError, _ProtocolViolation) as exc:
                    failures.append(exc)
                nursery.cancel_scope.cancel()

            nursery.start_soon(guarded, self._write)
            nursery.start_soon(guarded, self._read)
        raise failures[0] if failures else trio.BrokenResourceError("closed by the listener")

    async def _write(self, stream: trio.abc.SendStream) -> None:
        max_bytes = self._config.write_batch_bytes
        while True:
            await self._outbox.wait_nonempty()
            data, calls = self._outbox.take(max_bytes)
            for call in calls:
                self._inflight[call.call_id] = call
            if data:
                await stream.send_all(b"".join(data) if len(data) > 1 else data[0])
                self.counters.add(Metric.FRAMES_OUT, len(data))

    async def _read(self, stream: trio.abc.ReceiveStream) -> None:
        reader = FrameReader(stream, self._config, self.counters)
        while (frame := await reader.receive()) is not None:
            if frame.type not in (FrameType.RESPONSE, FrameType.ERROR):
                self.counters.add(Metric.MALFORMED_DROPPED)
                raise _ProtocolViolation(f"unexpected {frame.type.name} frame from listener")
            call = self._inflight.pop(frame.call_id, None)
            if call is None:
                self.counters.add(Metric.LATE_REPLIES)
            else:
                call.resolve(frame)

    def _fail_inflight(self) -> None:
        calls, self._inflight = self._inflight, {}
        for call in calls.values():
            self.counters.add(Metric.CALLS_UNAVAILABLE)
            call.fail(RpcUnavailable(f"connection to {self.address} lost"))


async def call_address(
    address: HostPort,
    kind: str,
    body: bytes,
    *,
    config: RpcConfig,
    rng: random.Random,
    reply_within: float,
    ssl_context: ssl.SSLContext | None = None,
) -> bytes:
    """One request to an address with a connection of its own (greetings, joins, the CLI).

    Raises RpcError, or RpcTimeout when no reply came within `reply_within` seconds (a
    server that is down shows as a timeout: the peer keeps redialling until then)."""
    peer = Peer(address, config, rng, ssl_context=ssl_context)
    outcome: bytes | RpcError
    async with trio.open_nursery() as nursery:
        await nursery.start(peer.run)
        try:
            with trio.fail_after(reply_within):
                outcome = await peer.call(kind, body)
        except trio.TooSlowError:
            outcome = RpcTimeout(f"no reply from {address} to {kind!r} within {reply_within}s")
        except RpcError as exc:
            outcome = exc
        nursery.cancel_scope.cancel()
    if isinstance(outcome, RpcError):
        raise outcome
    return outcome
