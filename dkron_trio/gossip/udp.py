"""The gossip shell: a SwimCore on a Trio UDP socket.

One task ticks the core every `TICK_MS` (a late tick is not followed by a burst of catch-up
ticks), one reads datagrams, one writes them. Datagrams that are oversize, not sealed with an
installed key (when a keyring is set), replayed, or malformed are dropped and counted in
`stats`. Membership events are delivered on `events`; keyring requests and answers (not SWIM)
go to the `on_key_message` callback.
"""

from __future__ import annotations

import math
import random
import socket
import time
from collections.abc import Callable, Iterable

import attrs
import trio

from dkron_trio.config import HostPort
from dkron_trio.gossip.codec import CodecError, decode_packet, encode_packet
from dkron_trio.gossip.config import TICK_MS, GossipConfig
from dkron_trio.gossip.keyring import Keyring, ReplayWindow, UnsealError
from dkron_trio.gossip.messages import Addr, KeyRequest, KeyResponse, Packet, Tags
from dkron_trio.gossip.swim import SwimCore
from dkron_trio.gossip.swim_types import Member, MemberEvent
from dkron_trio.logs import get_logger

log = get_logger(__name__)

_ANY_HOSTS = ("", "0.0.0.0", "::")
_RECV_SIZE = 65536
_SEND_QUEUE = 4096

KeyMessageHandler = Callable[[Addr, KeyRequest | KeyResponse], None]


@attrs.define
class GossipStats:
    """Datagram counters (exported as metrics)."""

    received: int = 0
    sent: int = 0
    oversize: int = 0
    malformed: int = 0
    unsealed: int = 0
    replayed: int = 0
    send_errors: int = 0
    send_dropped: int = 0
    """Datagrams dropped because the send queue was full."""


def _text(addr: Addr) -> str:
    return str(HostPort(addr[0], addr[1]))


class GossipNode:
    """A cluster member speaking SWIM over UDP. Create, start `run` in a nursery (it reports
    the advertised address once bound), then `join`."""

    def __init__(
        self,
        name: str,
        bind: HostPort,
        *,
        tags: Tags | None = None,
        config: GossipConfig | None = None,
        keyring: Keyring | None = None,
        advertise: HostPort | None = None,
        rng: random.Random | None = None,
        on_key_message: KeyMessageHandler | None = None,
    ) -> None:
        if advertise is None and bind.host in _ANY_HOSTS:
            raise ValueError(f"advertise: required when binding to every interface ({bind})")
        self._name = name
        self._bind = bind
        self._advertise = advertise
        self._tags = dict(tags or {})
        self._config = config or GossipConfig()
        self._keyring = keyring
        self._replays = ReplayWindow()
        self._rng = rng or random.Random()
        self._on_key_message = on_key_message
        self._core: SwimCore | None = None
        self._changed = trio.Event()
        self._wall_offset = 0.0
        self.stats = GossipStats()
        self._events_in, self.events = trio.open_memory_channel[MemberEvent](math.inf)
        self._out_in, self._out = trio.open_memory_channel[tuple[Addr, bytes]](_SEND_QUEUE)

    # ---------------------------------------------------------------- service

    async def run(
        self, *, task_status: trio.TaskStatus[HostPort] = trio.TASK_STATUS_IGNORED
    ) -> None:
        family = socket.AF_INET6 if ":" in self._bind.host else socket.AF_INET
        with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
            await sock.bind((self._bind.host, self._bind.port))
            port = sock.getsockname()[1]
            adv = self._advertise or HostPort(self._bind.host, port)
            if adv.port == 0:
                adv = HostPort(adv.host, port)
            self._wall_offset = time.time() - trio.current_time()
            self._core = SwimCore.create(
                self._name,
                (adv.host, adv.port),
                self._tags,
                self._config,
                self._rng,
                wall_tick=self._wall_tick(),
            )
            log.info("gossip listening", name=self._name, bind=str(self._bind), advertise=str(adv))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._send_loop, sock)
                nursery.start_soon(self._recv_loop, sock)
                nursery.start_soon(self._tick_loop)
                self._flush()
                task_status.started(adv)

    @property
    def core(self) -> SwimCore:
        if self._core is None:
            raise RuntimeError("gossip is not running yet")
        return self._core

    @property
    def keyring(self) -> Keyring | None:
        return self._keyring

    def members(self) -> list[Member]:
        return self.core.members()

    def join(self, seeds: Iterable[HostPort]) -> None:
        """Start joining through `seeds` (retried until one answers; see `wait_joined`)."""
        self.core.join([(s.host, s.port) for s in seeds])
        self._flush()

    async def wait_joined(self) -> None:
        await self.wait_until(lambda: self.core.joined)

    def set_tags(self, tags: Tags) -> None:
        self.core.set_tags(tags)
        self._flush()

    async def leave(self) -> None:
        """Announce our leave and wait until it has gone out (callers bound the wait, e.g.
        with `trio.move_on_after`; Serf waits about a second)."""
        self.core.leave()
        self._flush()
        await self.wait_until(lambda: self.core.leave_done)

    def send(self, addr: Addr, packet: Packet) -> None:
        """Send a packet outside the SWIM core (keyring requests and answers)."""
        self._queue(addr, packet)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds; it is checked after every tick and datagram."""
        while not predicate():
            await self._changed.wait()

    # ---------------------------------------------------------------- loops

    async def _tick_loop(self) -> None:
        period = TICK_MS / 1000
        deadline = trio.current_time()
        while True:
            now = trio.current_time()
            late = now > deadline + 2 * period
            deadline = max(deadline + period, now)
            await trio.sleep_until(deadline)
            self.core.tick()
            if late:
                self.core.set_wall_tick(self._wall_tick())
            self._flush()

    def _wall_tick(self) -> int:
        """Wall-clock time in ticks, read from Trio's clock (so it runs with a MockClock) set
        against the wall clock at start."""
        return int((trio.current_time() + self._wall_offset) * 1000) // TICK_MS

    async def _recv_loop(self, sock: trio.socket.SocketType) -> None:
        while True:
            data, src = await sock.recvfrom(_RECV_SIZE)
            self._handle(data, (src[0], src[1]))

    async def _send_loop(self, sock: trio.socket.SocketType) -> None:
        async for addr, data in self._out:
            try:
                await sock.sendto(data, addr)
                self.stats.sent += 1
            except OSError as exc:
                self.stats.send_errors += 1
                log.debug("gossip send failed", to=_text(addr), error=str(exc))

    def _handle(self, data: bytes, src: Addr) -> None:
        stats = self.stats
        if len(data) > self._config.udp_buffer_size:
            stats.oversize += 1
            log.debug("gossip datagram oversize", source=_text(src), size=len(data))
            return
        plain = data
        if self._keyring is not None:
            try:
                plain = self._keyring.open(data)
            except UnsealError:
                stats.unsealed += 1
                log.debug("gossip datagram not sealed with a known key", source=_text(src))
                return
            if not self._replays.admit(data):
                stats.replayed += 1
                log.debug("gossip datagram replayed", source=_text(src))
                return
        try:
            packet = decode_packet(plain, self._config.udp_buffer_size)
        except CodecError as exc:
            stats.malformed += 1
            log.debug("gossip datagram malformed", source=_text(src), error=str(exc))
            return
        stats.received += 1
        if isinstance(packet[0], KeyRequest | KeyResponse):
            if self._on_key_message is not None:
                for msg in packet:
                    if isinstance(msg, KeyRequest | KeyResponse):
                        self._on_key_message(src, msg)
            return
        self.core.receive(src, packet)
        self._flush()

    def _flush(self) -> None:
        """Queue the core's datagrams, publish its events, wake waiters."""
        core = self.core
        for addr, packet in core.take_outbox():
            self._queue(addr, packet)
        for event in core.take_events():
            self._events_in.send_nowait(event)
        self._changed.set()
        self._changed = trio.Event()

    def _queue(self, addr: Addr, packet: Packet) -> None:
        data = encode_packet(packet)
        if self._keyring is not None:
            data = self._keyring.seal(data)
        try:
            self._out_in.send_nowait((addr, data))
        except trio.WouldBlock:
            self.stats.send_dropped += 1
