"""The RPC listener on rpc-port: reads frames and dispatches them by kind to handlers.

Requests run concurrently (up to max_concurrent_requests per connection, after which the
connection stops being read: back-pressure) and each gets a RESPONSE or an ERROR frame with
its call_id. One-way frames run in arrival order, one at a time per connection, so a sender
sees its messages handled in the order it sent them. A malformed or oversize frame is
counted and closes that connection only; the listener keeps serving the others.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable

import trio

from dkron_trio.config import HostPort
from dkron_trio.logs import get_logger
from dkron_trio.rpc.config import RpcConfig
from dkron_trio.rpc.connection import FrameReader, StreamErrors, accept_tls
from dkron_trio.rpc.counters import Counters, Metric
from dkron_trio.rpc.framing import MAX_KIND_LENGTH, Frame, FrameError, FrameType, encode_frame

log = get_logger(__name__)

RequestHandler = Callable[[bytes], Awaitable[bytes]]
"""Answers a request's body with the reply's body; an exception becomes an ERROR reply."""
MessageHandler = Callable[[bytes], Awaitable[None]]
"""Takes a one-way frame's body; an exception is counted and logged, nothing is replied."""


class _ProtocolViolation(Exception):
    """The dialer sent a frame type only a listener sends."""


class RpcServer:
    def __init__(
        self,
        config: RpcConfig,
        *,
        counters: Counters | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.counters = counters if counters is not None else Counters()
        self._config = config
        self._ssl_context = ssl_context
        self._requests: dict[str, RequestHandler] = {}
        self._messages: dict[str, MessageHandler] = {}

    def on_request(self, kind: str, handler: RequestHandler) -> None:
        self._check_kind(kind)
        self._requests[kind] = handler

    def on_message(self, kind: str, handler: MessageHandler) -> None:
        self._check_kind(kind)
        self._messages[kind] = handler

    def _check_kind(self, kind: str) -> None:
        if not kind or len(kind) > MAX_KIND_LENGTH:
            raise ValueError(f"kind must be 1-{MAX_KIND_LENGTH} characters, got {kind!r}")
        if kind in self._requests or kind in self._messages:
            raise ValueError(f"kind {kind!r} already has a handler")

    async def run(
        self, address: HostPort, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on `address` until cancelled; started() reports the bound port (for port 0).

        Host "" listens on every interface (one listener per address family; with port 0
        those ports may differ, and the first is reported)."""
        listeners = await trio.open_tcp_listeners(address.port, host=address.host or None)
        port: int = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self.serve_stream, listeners)
            log.info(
                "rpc listening", host=address.host, port=port, tls=self._ssl_context is not None
            )
            task_status.started(port)

    async def serve_stream(self, stream: trio.abc.Stream) -> None:
        """Serve one accepted connection until it closes or misbehaves."""
        self.counters.add(Metric.CONNECTIONS_ACCEPTED)
        try:
            if self._ssl_context is not None:
                stream = await accept_tls(stream, self._ssl_context, self._config)
            await self._serve(stream)
        except (*StreamErrors, FrameError, _ProtocolViolation) as exc:
            log.debug("rpc connection closed", error=str(exc) or type(exc).__name__)
        finally:
            await trio.aclose_forcefully(stream)

    async def _serve(self, stream: trio.abc.Stream) -> None:
        replies_in, replies_out = trio.open_memory_channel[bytes](
            self._config.max_concurrent_requests
        )
        slots = trio.Semaphore(self._config.max_concurrent_requests)
        failures: list[Exception] = []
        async with trio.open_nursery() as nursery:

            async def read() -> None:
                reader = FrameReader(stream, self._config, self.counters)
                while (frame := await reader.receive()) is not None:
                    if frame.type is FrameType.REQUEST:
                        await slots.acquire()
                        nursery.start_soon(self._answer, frame, replies_in, slots)
                    elif frame.type is FrameType.ONEWAY:
                        await self._deliver(frame)
                    else:
                        self.counters.add(Metric.MALFORMED_DROPPED)
                        raise _ProtocolViolation(f"unexpected {frame.type.name} frame")

            async def write() -> None:
                await self._write(stream, replies_out)

            async def guarded(part: Callable[[], Awaitable[None]]) -> None:
                try:
                    await part()
                except (*StreamErrors, FrameError, _ProtocolViolation) as exc:
                    failures.append(exc)
                nursery.cancel_scope.cancel()

            nursery.start_soon(guarded, write)
            nursery.start_soon(guarded, read)
        if failures:
            raise failures[0]

    async def _write(
        self, stream: trio.abc.SendStream, replies: trio.MemoryReceiveChannel[bytes]
    ) -> None:
        max_bytes = self._config.write_batch_bytes
        async for first in replies:
            batch = [first]
            size = len(first)
            while size < max_bytes:
                try:
                    data = replies.receive_nowait()
                except trio.WouldBlock:
                    break
                batch.append(data)
                size += len(data)
            await stream.send_all(b"".join(batch) if len(batch) > 1 else first)
            self.counters.add(Metric.FRAMES_OUT, len(batch))

    async def _answer(
        self, frame: Frame, replies: trio.MemorySendChannel[bytes], slots: trio.Semaphore
    ) -> None:
        try:
            handler = self._requests.get(frame.kind)
            if handler is None:
                self.counters.add(Metric.UNKNOWN_KIND)
                reply = Frame(FrameType.ERROR, "", frame.call_id, _unknown(frame.kind))
            else:
                try:
                    body = await handler(frame.body)
                except Exception as exc:
                    self.counters.add(Metric.HANDLER_ERRORS)
                    log.warning("rpc handler failed", kind=frame.kind, error=repr(exc))
                    body, type_ = f"{type(exc).__name__}: {exc}".encode(), FrameType.ERROR
                else:
                    type_ = FrameType.RESPONSE
                reply = Frame(type_, "", frame.call_id, body)
            try:
                data = encode_frame(reply, self._config.max_frame_size)
            except FrameError as exc:
                error = Frame(FrameType.ERROR, "", frame.call_id, f"reply: {exc}".encode())
                data = encode_frame(error, self._config.max_frame_size)
            await replies.send(data)
        finally:
            slots.release()

    async def _deliver(self, frame: Frame) -> None:
        handler = self._messages.get(frame.kind)
        if handler is None:
            self.counters.add(Metric.UNKNOWN_KIND)
            log.debug("rpc message of unknown kind dropped", kind=frame.kind)
            return
        try:
            await handler(frame.body)
        except Exception as exc:
            self.counters.add(Metric.HANDLER_ERRORS)
            log.warning("rpc message handler failed", kind=frame.kind, error=repr(exc))


def _unknown(kind: str) -> bytes:
    return f"no handler for kind {kind!r}".encode()
