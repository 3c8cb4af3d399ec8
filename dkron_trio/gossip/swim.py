"""The SWIM membership protocol (memberlist's flavour, with Lifeguard) as a pure state machine.

Time is the count of `tick()` calls (the shell ticks every `config.TICK_MS`, 100 ms, and does
not burst missed ticks after a pause, so a stalled process does not expire all its timers at
once). Input is `receive(addr, packet)`; output is `take_outbox()` (datagrams to send) and
`take_events()` (membership changes). Randomness comes from the injected rng only.

Rules, as in memberlist:
- probing and local health: see swim_probe (a failed probe makes the member suspect);
- suspicion: a timer from `max` down to `min` as independent suspicions confirm it; when it
  fires the member is declared dead;
- precedence: Alive with a higher incarnation overrides suspect and dead; Suspect and Dead
  need an incarnation at least the current one; dead and left are final for an incarnation;
  news about ourselves is refuted by taking a higher incarnation;
- dissemination: every state change is queued for piggybacking (see swim_broadcast) and
  gossiped to `gossip_nodes` random members every gossip interval; full state is exchanged
  with one random member every push-pull interval, with the seeds on join (retried until one
  answers) and now and then with a failed member (so healed partitions merge).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from dkron_trio.gossip.codec import PACKET_OVERHEAD, message_size, tags_size
from dkron_trio.gossip.config import META_MAX_BYTES, SEAL_OVERHEAD, GossipConfig
from dkron_trio.gossip.messages import (
    Ack,
    Addr,
    Alive,
    Dead,
    MemberState,
    Message,
    Nack,
    NodeState,
    Packet,
    Ping,
    PingReq,
    PushPull,
    Suspect,
    Tags,
)
from dkron_trio.gossip.swim_broadcast import BroadcastQueue, retransmit_limit
from dkron_trio.gossip.swim_nodes import (
    GONE,
    LIVE,
    NodeRecord,
    pick,
    push_pull_scale,
    state_chunks,
)
from dkron_trio.gossip.swim_probe import Prober
from dkron_trio.gossip.swim_suspicion import Suspicion, suspicion_timeout
from dkron_trio.gossip.swim_types import EventKind, Member, MemberEvent, SwimRng, TagsTooLarge


@attrs.define
class SwimCore:
    """One member's view of the cluster. Not thread-safe; driven by one shell."""

    _name: str
    _addr: Addr
    _config: GossipConfig
    _rng: SwimRng
    _nodes: dict[str, NodeRecord] = attrs.field(factory=dict)
    _tick: int = 0
    _outbox: list[tuple[Addr, Packet]] = attrs.field(factory=list)
    _events: list[MemberEvent] = attrs.field(factory=list)
    _broadcasts: BroadcastQueue = attrs.field(factory=BroadcastQueue)
    _suspicions: dict[str, Suspicion] = attrs.field(factory=dict)
    _prober: Prober = attrs.field(init=False)
    _next_gossip: int = 0
    _next_push_pull: int = 0
    _next_reconnect: int = 0
    _next_reap: int = 0
    _seeds: tuple[Addr, ...] = ()
    _joined: bool = True
    _next_join: int = 0
    _leaving: bool = False
    _room: int = 0
    _candidates: list[NodeRecord] | None = None
    _due: int | None = None
    """Cached next_due(); every public method that changes state clears it."""
    _candidates_until: int = 0

    @classmethod
    def create(
        cls,
        name: str,
        addr: Addr,
        tags: Tags,
        config: GossipConfig,
        rng: SwimRng,
        *,
        known: Iterable[Member] = (),
        wall_tick: int = 0,
    ) -> SwimCore:
        """A single-member cluster to `join` to others, or one that starts out knowing the
        `known` members (a restored view: they are reported as joined but not announced, as
        everyone is assumed to know them). Timers start at random phases so members started
        together do not probe and gossip in lockstep. `wall_tick`: see `set_wall_tick`."""
        if not name:
            raise ValueError("name: must not be empty")
        core = cls(name, addr, config, rng)
        core._check_tags(tags)
        core._nodes[name] = NodeRecord(name, addr, dict(tags), 1, MemberState.ALIVE, 0)
        for m in known:
            if m.name != name and m.name not in core._nodes:
                node = NodeRecord(m.name, m.addr, dict(m.tags), m.incarnation, m.state, 0)
                core._nodes[m.name] = node
                core._emit(EventKind.JOINED, node)
        core._room = config.udp_buffer_size - SEAL_OVERHEAD - PACKET_OVERHEAD
        first_probe = rng.randrange(1, config.probe_interval_ticks + 1)
        core._prober = Prober(
            name, core._nodes, config, rng, core._send, core._send_packet, first_probe, wall_tick
        )
        core._next_gossip = rng.randrange(1, config.gossip_interval_ticks + 1)
        core._next_push_pull = rng.randrange(1, config.push_pull_interval_ticks + 1)
        core._next_reconnect = rng.randrange(1, config.reconnect_interval_ticks + 1)
        core._next_reap = config.reap_interval_ticks
        return core

    # ----------------------------------------------------------------- inspection

    @property
    def name(self) -> str:
        return self._name

    @property
    def now(self) -> int:
        """Ticks so far."""
        return self._tick

    @property
    def incarnation(self) -> int:
        return self._nodes[self._name].incarnation

    @property
    def awareness(self) -> int:
        """Lifeguard's local health score: 0 is healthy."""
        return self._prober.awareness

    @property
    def joined(self) -> bool:
        """False while a join is still waiting for a seed to answer."""
        return self._joined

    @property
    def leave_done(self) -> bool:
        """After `leave`: the leave intent has been sent as often as any news is, or there is
        nobody left to tell."""
        if not self._leaving:
            return False
        return not self._broadcasts.pending(self._name) or not self._gossip_candidates()

    def local(self) -> Member:
        return self._nodes[self._name].snapshot()

    def member(self, name: str) -> Member | None:
        node = self._nodes.get(name)
        return None if node is None else node.snapshot()

    def members(self) -> list[Member]:
        """Every member known, ourselves included, in name order."""
        return [self._nodes[n].snapshot() for n in sorted(self._nodes)]

    def state_of(self, name: str) -> MemberState | None:
        node = self._nodes.get(name)
        return None if node is None else node.state

    def suspicion(self, name: str) -> Suspicion | None:
        return self._suspicions.get(name)

    def queued_transmits(self, name: str) -> int | None:
        """Times queued news about `name` has been sent; None when none is queued."""
        return self._broadcasts.transmits(name)

    def take_outbox(self) -> list[tuple[Addr, Packet]]:
        out, self._outbox = self._outbox, []
        return out

    def take_events(self) -> list[MemberEvent]:
        out, self._events = self._events, []
        return out

    # ----------------------------------------------------------------- commands

    def join(self, seeds: Iterable[Addr]) -> None:
        """Exchange full state with every seed, again every `join_retry_ticks` until one
        answers. Seeds equal to our own address are ignored."""
        self._due = None
        self._seeds = tuple(s for s in seeds if s != self._addr)
        if not self._seeds or self._leaving:
            return
        self._joined = False
        self._next_join = self._tick + self._config.join_retry_ticks
        for seed in self._seeds:
            self._send_state(seed, reply=True)

    def leave(self) -> None:
        """Announce that we leave (a Dead about ourselves sent by ourselves) and stop probing.
        Keep ticking until `leave_done` so the intent gets out."""
        if self._leaving:
            return
        self._due = None
        self._leaving = True
        self._joined = True
        self._prober.stop()
        me = self._nodes[self._name]
        me.state = MemberState.LEFT
        me.changed = self._tick
        self._broadcast(self._name, Dead(me.incarnation, self._name, self._name))

    def set_tags(self, tags: Tags) -> None:
        """Replace our tags; the news goes out with a new incarnation."""
        self._check_tags(tags)
        self._due = None
        me = self._nodes[self._name]
        me.tags = dict(tags)
        me.incarnation += 1
        self._broadcast_self()

    def set_wall_tick(self, wall_tick: int) -> None:
        """Which wall-clock tick (milliseconds since the epoch // TICK_MS) this is: aligns our
        probe rounds with the other members' (swim_probe). Shells call it at start and after
        losing ticks; it changes no timer."""
        self._due = None
        self._prober.set_wall_tick(self._tick, wall_tick)

    # ----------------------------------------------------------------- time

    def next_due(self) -> int:
        """The tick at which `tick()` next has work; earlier ticks would only count time."""
        if self._due is None:
            self._due = self._compute_due()
        return self._due

    def _compute_due(self) -> int:
        due = [self._next_reap]
        if not self._leaving:
            due += (self._next_push_pull, self._next_reconnect)
            if not self._joined:
                due.append(self._next_join)
        due += self._prober.due()
        if self._suspicions:
            due += (s.deadline for s in self._suspicions.values())
        if self._broadcasts:
            due.append(self._next_gossip)
        return max(min(due), self._tick + 1)

    def advance(self, ticks: int) -> None:
        """Exactly `ticks` calls of `tick()`, skipping the idle ones in one step (simulators
        use it to run large clusters fast)."""
        while ticks > 0:
            idle = min(ticks, self.next_due() - self._tick - 1)
            if idle > 0:
                self._tick += idle
                ticks -= idle
                late = self._tick - self._next_gossip
                if late >= 0:
                    interval = self._config.gossip_interval_ticks
                    self._next_gossip += (late // interval + 1) * interval
            if ticks > 0:
                self.tick()
                ticks -= 1

    def tick(self) -> None:
        self._due = None
        self._tick += 1
        now = self._tick
        failed = self._prober.tick(now)
        if failed is not None:
            self._on_suspect(Suspect(failed.incarnation, failed.name, self._name))
        if self._suspicions:
            for name in [n for n, s in self._suspicions.items() if now >= s.deadline]:
                self._suspicion_expired(name)
        if now >= self._next_gossip:
            self._next_gossip = now + self._config.gossip_interval_ticks
            if self._broadcasts:
                self._gossip()
        if not self._leaving:
            self._tick_state_exchange(now)
        if now >= self._next_reap:
            self._next_reap = now + self._config.reap_interval_ticks
            self._reap(now)

    def _tick_state_exchange(self, now: int) -> None:
        cfg = self._config
        if not self._joined and now >= self._next_join:
            self._next_join = now + cfg.join_retry_ticks
            for seed in self._seeds:
                self._send_state(seed, reply=True)
        if now >= self._next_push_pull:
            self._next_push_pull = now + push_pull_scale(
                cfg.push_pull_interval_ticks, len(self._nodes)
            )
            peers = [n for n in self._nodes.values() if n.state is MemberState.ALIVE]
            peers = [n for n in peers if n.name != self._name]
            if peers:
                self._send_state(peers[self._rng.randrange(len(peers))].addr, reply=True)
        if now >= self._next_reconnect:
            self._next_reconnect = now + cfg.reconnect_interval_ticks
            failed = [n for n in self._nodes.values() if n.state is MemberState.DEAD]
            if failed:
                self._send_state(failed[self._rng.randrange(len(failed))].addr, reply=True)

    # ----------------------------------------------------------------- input

    def receive(self, src: Addr, packet: Packet) -> None:
        """Handle one decoded datagram from `src`."""
        self._due = None
        for msg in packet:
            if isinstance(msg, Alive):  # most frequent: dispatch it first
                self._on_alive(msg)
                continue
            match msg:
                case Ping(seq, target):
                    if target == self._name:
                        self._send(src, Ack(seq))
                case Ack(seq):
                    self._prober.on_ack(seq)
                case Nack(seq):
                    self._prober.on_nack(seq)
                case PingReq():
                    self._prober.on_ping_req(self._tick, src, msg)
                case Suspect() | Dead() if msg.node == self._name:
                    self._on_rumour_about_us(src, msg)
                case Suspect():
                    self._on_suspect(msg)
                case Dead():
                    self._on_dead(msg)
                case PushPull(reply, states):
                    self._merge(states)
                    if reply:
                        self._send_state(src, reply=False)
                    elif not self._joined:
                        self._joined = True

    # ----------------------------------------------------------------- state rules

    def _on_alive(self, a: Alive) -> None:
        node = self._nodes.get(a.node)
        if a.node == self._name:
            assert node is not None
            if self._leaving or a.incarnation < node.incarnation:
                return
            if a.incarnation == node.incarnation and a.addr == node.addr and a.tags == node.tags:
                return
            self._refute(a.incarnation)
            return
        if node is None:
            node = NodeRecord(
                a.node, a.addr, dict(a.tags), a.incarnation, MemberState.ALIVE, self._tick
            )
            self._nodes[a.node] = node
            self._membership_changed()
            self._broadcast(a.node, a)
            self._emit(EventKind.JOINED, node)
            return
        if a.incarnation <= node.incarnation:
            return
        old = node.state
        meta_changed = a.addr != node.addr or a.tags != node.tags
        self._suspicions.pop(a.node, None)
        node.incarnation = a.incarnation
        node.addr = a.addr
        node.tags = dict(a.tags)
        if old is not MemberState.ALIVE:
            node.state = MemberState.ALIVE
            node.changed = self._tick
            self._membership_changed()
        self._broadcast(a.node, a)
        if old in GONE:
            self._emit(EventKind.JOINED, node)
        elif meta_changed:
            self._emit(EventKind.UPDATED, node)
        elif old is MemberState.SUSPECT:
            self._emit(EventKind.RECOVERED, node)

    def _on_suspect(self, s: Suspect) -> None:
        node = self._nodes.get(s.node)
        if node is None or s.incarnation < node.incarnation:
            return
        if node.state is MemberState.SUSPECT:
            timer = self._suspicions.get(s.node)
            if timer is not None and timer.confirm(s.sender):
                self._broadcast(s.node, s)
            return
        if node.state in GONE:
            return
        if s.node == self._name:
            if not self._leaving:
                self._refute(s.incarnation)
            return
        node.incarnation = s.incarnation
        node.state = MemberState.SUSPECT
        node.changed = self._tick
        self._start_suspicion(node, s.sender)
        self._broadcast(s.node, s)
        self._emit(EventKind.SUSPECT, node)

    def _start_suspicion(self, node: NodeRecord, sender: str) -> None:
        cfg = self._config
        n = len(self._nodes)
        k = cfg.suspicion_mult - 2
        if n - 2 < k:
            k = 0
        low = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval_ticks)
        high = cfg.suspicion_max_timeout_mult * low
        self._suspicions[node.name] = Suspicion.begin(self._tick, sender, k, low, high)

    def _suspicion_expired(self, name: str) -> None:
        del self._suspicions[name]
        node = self._nodes.get(name)
        if node is not None and node.state is MemberState.SUSPECT:
            self._on_dead(Dead(node.incarnation, name, self._name))

    def _on_dead(self, d: Dead) -> None:
        node = self._nodes.get(d.node)
        if node is None or d.incarnation < node.incarnation or node.state in GONE:
            return
        if d.node == self._name:
            if not self._leaving:
                self._refute(d.incarnation)
            return
        self._suspicions.pop(d.node, None)
        node.incarnation = d.incarnation
        node.state = MemberState.LEFT if d.is_leave else MemberState.DEAD
        node.changed = self._tick
        self._membership_changed()
        self._broadcast(d.node, d)
        self._emit(EventKind.LEFT if d.is_leave else EventKind.FAILED, node)

    def _on_rumour_about_us(self, src: Addr, rumour: Suspect | Dead) -> None:
        """Refute a current rumour; answer the sender of a stale one (it missed our
        refutation, and would otherwise declare us dead when its suspicion runs out)."""
        me = self._nodes[self._name]
        if self._leaving or rumour.incarnation >= me.incarnation:
            if isinstance(rumour, Suspect):
                self._on_suspect(rumour)
            else:
                self._on_dead(rumour)
        else:
            self._send(src, Alive(me.incarnation, self._name, me.addr, dict(me.tags)))

    def _refute(self, incarnation: int) -> None:
        me = self._nodes[self._name]
        me.incarnation = max(me.incarnation, incarnation) + 1
        self._prober.adjust_awareness(1)
        self._broadcast_self()

    def _merge(self, states: Sequence[NodeState]) -> None:
        """A peer's full state, applied as memberlist does: its dead members only become
        suspect here (we probe them ourselves), its left members are left."""
        for s in states:
            if s.state is MemberState.ALIVE:
                self._on_alive(Alive(s.incarnation, s.node, s.addr, s.tags))
            elif s.state is MemberState.LEFT:
                self._on_dead(Dead(s.incarnation, s.node, s.node))
            else:
                self._on_suspect(Suspect(s.incarnation, s.node, self._name))

    def _reap(self, now: int) -> None:
        timeout = self._config.reconnect_timeout_ticks
        for node in [n for n in self._nodes.values() if n.state in GONE]:
            if now - node.changed >= timeout:
                del self._nodes[node.name]
                self._membership_changed()
                self._emit(EventKind.REAPED, node)

    # ----------------------------------------------------------------- output

    def _membership_changed(self) -> None:
        self._candidates = None
        self._prober.members_changed()

    def _emit(self, kind: EventKind, node: NodeRecord) -> None:
        self._events.append(MemberEvent(kind, node.snapshot()))

    def _check_tags(self, tags: Tags) -> None:
        for k, v in tags.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"tags: keys and values must be strings, got {k!r}: {v!r}")
        size = tags_size(tags)
        if size > META_MAX_BYTES:
            raise TagsTooLarge(
                f"tags: encoded size {size} bytes exceeds the limit of {META_MAX_BYTES}"
            )

    def _broadcast_self(self) -> None:
        me = self._nodes[self._name]
        self._broadcast(self._name, Alive(me.incarnation, self._name, me.addr, dict(me.tags)))

    def _broadcast(self, node: str, msg: Message) -> None:
        self._broadcasts.queue(node, msg, message_size(msg))

    def _retransmit_limit(self) -> int:
        return retransmit_limit(self._config.retransmit_mult, len(self._nodes))

    def _send_packet(self, addr: Addr, packet: Packet) -> None:
        self._outbox.append((addr, packet))

    def _send(self, addr: Addr, msg: Message) -> None:
        """Send `msg` with as much piggybacked news as fits in the datagram."""
        if self._broadcasts:
            extra = self._broadcasts.take(self._room - message_size(msg), self._retransmit_limit())
            self._outbox.append((addr, (msg, *extra)))
        else:
            self._outbox.append((addr, (msg,)))

    def _gossip_candidates(self) -> list[NodeRecord]:
        """Live members, and failed or left ones for a while (so they can learn and refute);
        cached until membership changes or one of those grace periods ends."""
        now = self._tick
        if self._candidates is not None and now < self._candidates_until:
            return self._candidates
        grace = self._config.gossip_to_the_dead_ticks
        until = now + grace
        out = []
        for n in self._nodes.values():
            if n.name == self._name:
                continue
            if n.state in LIVE:
                out.append(n)
            elif now - n.changed < grace:
                out.append(n)
                until = min(until, n.changed + grace)
        self._candidates, self._candidates_until = out, until
        return out

    def _gossip(self) -> None:
        limit = self._retransmit_limit()
        for node in pick(self._rng, self._gossip_candidates(), self._config.gossip_nodes):
            news = self._broadcasts.take(self._room, limit)
            if not news:
                return
            self._outbox.append((node.addr, tuple(news)))

    def _send_state(self, addr: Addr, *, reply: bool) -> None:
        for part in state_chunks(self._nodes.values(), self._room, reply=reply):
            self._outbox.append((addr, (part,)))
