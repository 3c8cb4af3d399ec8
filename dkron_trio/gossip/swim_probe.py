"""SWIM's failure detector with Lifeguard's local health, as one part of the SWIM core.

Each probe interval one member gets a Ping; no Ack within the probe timeout -> `indirect_checks`
members get a PingReq and answer with the forwarded Ack or a Nack; still no Ack at the end of
the interval -> the member is reported for suspicion. A missed Nack, a failed probe without
helpers, or having to refute a suspicion of ourselves raises the awareness score, a successful
probe lowers it; probe interval and timeout are multiplied by score + 1.

Which member: memberlist walks its own shuffled list, so the first probe of a crashed member
comes after an exponentially distributed wait (mean one interval, p99 4.6 intervals) and that
tail decides detection time. Here every member walks the same ring (live members in name
order) at an offset that grows by one each probe round, the round being wall-clock time
divided by the probe interval. In any round the probers' targets are then a permutation of the
members: everyone is probed about once per interval, by a different member each round. Members
whose views or clocks differ only overlap some targets for a while, which is what random order
does all the time.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

import attrs

from dkron_trio.gossip.config import GossipConfig
from dkron_trio.gossip.messages import (
    Ack,
    Addr,
    MemberState,
    Message,
    Nack,
    Packet,
    Ping,
    PingReq,
    Suspect,
)
from dkron_trio.gossip.swim_nodes import LIVE, NodeRecord, pick
from dkron_trio.gossip.swim_types import SwimRng


@attrs.define
class Probe:
    seq: int
    target: str
    timeout_at: int
    end_at: int
    acked: bool = False
    indirect: int = 0
    """PingReqs sent (each should bring an Ack or a Nack)."""
    nacks: int = 0


@attrs.define
class Relay:
    """A PingReq we are carrying out for `origin`."""

    origin: Addr
    seq: int
    nack_at: int | None
    expire_at: int


@attrs.define
class Prober:
    """Probing state of one member. It reads the core's member table (shared, never written
    here) and sends through the core's `send` (which piggybacks news) or `send_packet`."""

    _name: str
    _nodes: dict[str, NodeRecord]
    _config: GossipConfig
    _rng: SwimRng
    _send: Callable[[Addr, Message], None]
    _send_packet: Callable[[Addr, Packet], None]
    _next_probe: int
    _wall_phase: int = 0
    """Wall-clock tick number minus our tick count (see `set_wall_tick`)."""
    _awareness: int = 0
    _seq: int = 0
    _probe: Probe | None = None
    _relays: dict[int, Relay] = attrs.field(factory=dict)
    _ring: list[str] | None = None
    _stopped: bool = False

    @property
    def awareness(self) -> int:
        return self._awareness

    def members_changed(self) -> None:
        """Someone joined, failed, left or was reaped: rebuild the ring before the next probe."""
        self._ring = None

    def set_wall_tick(self, now: int, wall_tick: int) -> None:
        """Tell which wall-clock tick (milliseconds since the epoch // TICK_MS) our tick `now`
        is, so our probe rounds line up with the other members'."""
        self._wall_phase = wall_tick - now

    def stop(self) -> None:
        """No more probes (we are leaving); PingReqs from others are still carried out."""
        self._stopped = True
        self._probe = None

    def adjust_awareness(self, delta: int) -> None:
        top = self._config.awareness_max_multiplier - 1
        self._awareness = min(top, max(0, self._awareness + delta))

    def due(self) -> list[int]:
        """Ticks at which `tick` has work."""
        out = [] if self._stopped else [self._next_probe]
        probe = self._probe
        if probe is not None:
            pending = not probe.acked and probe.indirect == 0
            out.append(probe.timeout_at if pending else probe.end_at)
        out += (r.expire_at if r.nack_at is None else r.nack_at for r in self._relays.values())
        return out

    def tick(self, now: int) -> NodeRecord | None:
        """Advance probes and relays to `now`; returns a member whose probe failed."""
        failed = None
        probe = self._probe
        if probe is not None:
            if not probe.acked and probe.indirect == 0 and now >= probe.timeout_at:
                self._probe_indirect(probe)
            if now >= probe.end_at:
                failed = self._finish_probe(probe)
        if now >= self._next_probe and not self._stopped:
            self._start_probe(now)
        if self._relays:
            self._tick_relays(now)
        return failed

    # ---------------------------------------------------------------- input

    def on_ack(self, seq: int) -> None:
        probe = self._probe
        if probe is not None and probe.seq == seq:
            if not probe.acked:
                probe.acked = True
                self.adjust_awareness(-1)
            return
        relay = self._relays.pop(seq, None)
        if relay is not None:
            self._send(relay.origin, Ack(relay.seq))

    def on_nack(self, seq: int) -> None:
        probe = self._probe
        if probe is not None and probe.seq == seq:
            probe.nacks += 1

    def on_ping_req(self, now: int, src: Addr, req: PingReq) -> None:
        cfg = self._config
        self._seq += 1
        nack_at = now + max(1, cfg.probe_timeout_ticks * 4 // 5) if req.nack else None
        self._relays[self._seq] = Relay(src, req.seq, nack_at, now + cfg.probe_interval_ticks)
        self._send(req.addr, Ping(self._seq, req.target))

    # ---------------------------------------------------------------- probing

    def _scaled(self, ticks: int) -> int:
        return ticks * (self._awareness + 1)

    def _next_target(self, now: int) -> NodeRecord | None:
        ring = self._ring
        if ring is None:
            ring = self._ring = sorted(n for n, r in self._nodes.items() if r.state in LIVE)
        size = len(ring)
        if size < 2:
            return None
        me = bisect.bisect_left(ring, self._name)
        probe_round = (self._wall_phase + now) // self._config.probe_interval_ticks
        offset = 1 + probe_round % (size - 1)
        target = self._nodes.get(ring[(me + offset) % size])
        return target if target is not None and target.state in LIVE else None

    def _start_probe(self, now: int) -> None:
        cfg = self._config
        interval = self._scaled(cfg.probe_interval_ticks)
        self._next_probe = now + interval
        target = self._next_target(now)
        if target is None or target.name == self._name:
            return
        self._seq += 1
        timeout_at = now + self._scaled(cfg.probe_timeout_ticks)
        self._probe = Probe(self._seq, target.name, timeout_at, now + interval)
        ping = Ping(self._seq, target.name)
        if target.state is MemberState.SUSPECT:
            # Tell a suspect it is suspected, so it can refute even if the gossip missed it.
            suspect = Suspect(target.incarnation, target.name, self._name)
            self._send_packet(target.addr, (ping, suspect))
        else:
            self._send(target.addr, ping)

    def _probe_indirect(self, probe: Probe) -> None:
        target = self._nodes.get(probe.target)
        if target is None or target.state not in LIVE:
            return
        helpers = [
            n
            for n in self._nodes.values()
            if n.state is MemberState.ALIVE and n.name not in (self._name, probe.target)
        ]
        for helper in pick(self._rng, helpers, self._config.indirect_checks):
            probe.indirect += 1
            self._send(helper.addr, PingReq(probe.seq, target.name, target.addr, True))

    def _finish_probe(self, probe: Probe) -> NodeRecord | None:
        self._probe = None
        if probe.acked:
            return None
        if probe.indirect:
            self.adjust_awareness(max(0, probe.indirect - probe.nacks))
        else:
            self.adjust_awareness(1)
        target = self._nodes.get(probe.target)
        return target if target is not None and target.state in LIVE else None

    def _tick_relays(self, now: int) -> None:
        for seq, relay in list(self._relays.items()):
            if relay.nack_at is not None and now >= relay.nack_at:
                relay.nack_at = None
                self._send(relay.origin, Nack(relay.seq))
            if now >= relay.expire_at:
                del self._relays[seq]
