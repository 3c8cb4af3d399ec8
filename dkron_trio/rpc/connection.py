"""One RPC connection's byte stream: dialing (with optional TLS) and reading frames.

A connection carries requests and one-way frames in one direction (dialer to listener) and
replies in the other, so each ordered pair of nodes uses its own connection: A's peer for B
dials B's listener and B's peer for A dials A's. No connection is shared between directions,
which keeps ownership simple (the dialer reconnects, the listener only serves).
"""

from __future__ import annotations

import ssl

import trio

from dkron_trio.config import HostPort
from dkron_trio.logs import get_logger
from dkron_trio.rpc.config import RpcConfig
from dkron_trio.rpc.counters import Counters, Metric
from dkron_trio.rpc.framing import Frame, FrameDecoder, FrameError, FrameErrorReason

log = get_logger(__name__)

RECEIVE_SIZE = 1 << 16

StreamErrors = (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError)
"""What a broken or closed connection raises on send or receive."""


async def dial(
    address: HostPort,
    config: RpcConfig,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> trio.abc.Stream:
    """Connect (and complete the TLS handshake) within the connect and handshake timeouts.

    Failures raise one of StreamErrors; a timeout is reported as OSError.
    """
    try:
        with trio.fail_after(config.connect_timeout):
            tcp = await trio.open_tcp_stream(address.host or "127.0.0.1", address.port)
    except trio.TooSlowError:
        raise OSError(f"connect to {address} timed out") from None
    if ssl_context is None:
        return tcp
    stream = trio.SSLStream(tcp, ssl_context, server_hostname=server_hostname or address.host)
    try:
        with trio.fail_after(config.handshake_timeout):
            await stream.do_handshake()
    except BaseException as exc:
        await trio.aclose_forcefully(stream)
        if isinstance(exc, trio.TooSlowError):
            raise OSError(f"TLS handshake with {address} timed out") from None
        raise
    return stream


async def accept_tls(
    stream: trio.abc.Stream, ssl_context: ssl.SSLContext, config: RpcConfig
) -> trio.SSLStream[trio.abc.Stream]:
    """Server side of the TLS handshake, within the handshake timeout."""
    tls = trio.SSLStream(stream, ssl_context, server_side=True)
    try:
        with trio.fail_after(config.handshake_timeout):
            await tls.do_handshake()
    except trio.TooSlowError:
        raise OSError("TLS handshake timed out") from None
    return tls


class FrameReader:
    """Reads frames off a stream; a bad frame is counted, logged and raised as FrameError."""

    def __init__(self, stream: trio.abc.ReceiveStream, config: RpcConfig, counters: Counters):
        self._stream = stream
        self._decoder = FrameDecoder(config.max_frame_size)
        self._counters = counters
        self._ready: list[Frame] = []

    async def receive(self) -> Frame | None:
        """The next frame, or None once the other side has closed the stream."""
        while not self._ready:
            data = await self._stream.receive_some(RECEIVE_SIZE)
            if not data:
                return None
            self._decoder.feed(data)
            try:
                self._ready.extend(self._decoder.frames())
            except FrameError as exc:
                metric = (
                    Metric.OVERSIZE_DROPPED
                    if exc.reason is FrameErrorReason.OVERSIZE
                    else Metric.MALFORMED_DROPPED
                )
                self._counters.add(metric)
                log.warning(
                    "rpc frame rejected, closing connection",
                    reason=exc.reason.value,
                    error=str(exc),
                )
                raise
            self._ready.reverse()
        self._counters.add(Metric.FRAMES_IN)
        return self._ready.pop()
