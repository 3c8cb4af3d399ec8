"""What the agent runs for gossip: a GossipNode built from the agent's config, the member list
in the API's shape, member events for the Raft reconciler, tag reloads, a graceful leave, and
keyring operations applied on every member without downtime.

Keyring operations work like Serf's keyring queries: the asking member checks the operation
against its own keyring (a refusal there changes nothing anywhere), sends a KeyRequest sealed
with its current keys to every live member, resends to the silent ones every half second until
all have answered or the deadline passes, then applies the operation to its own keyring last
(so a `use` request still goes out under the key everyone already has). Each member answers a
repeated request with its first answer, so a lost answer never applies an operation twice.
"""

from __future__ import annotations

import collections
import enum
import math
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from dkron_trio.config import RESERVED_TAGS, AgentConfig, ConfigError, HostPort, read_config_file
from dkron_trio.gossip.config import TICK_MS, agent_gossip_config, parse_key
from dkron_trio.gossip.keyring import Keyring
from dkron_trio.gossip.keyring_query import KeyQuery, KeyringReport, KeyringUnavailable
from dkron_trio.gossip.messages import Addr, KeyOp, KeyRequest, KeyResponse, MemberState
from dkron_trio.gossip.swim_types import EventKind
from dkron_trio.gossip.swim_types import Member as SwimMember
from dkron_trio.gossip.udp import GossipNode, GossipStats
from dkron_trio.http.context import Member, MemberStatus
from dkron_trio.logs import get_logger

log = get_logger(__name__)

KEY_QUERY_TIMEOUT = 5.0
"""Seconds a keyring operation waits for every member to answer (about Serf's query timeout
at 50 members)."""
KEY_QUERY_RETRY_TICKS = 5
"""Resend a keyring request to silent members this often (ticks of TICK_MS)."""
LEAVE_TIMEOUT = 5.0
"""Longest wait for the leave intent to go out (Serf waits a few gossip rounds)."""
SUBSCRIBER_BUFFER = 4096
"""Member events held for a slow subscriber before newer ones are dropped (the Raft reconciler
also reconciles every 60 s, so a drop delays it, never loses a member)."""
_ANSWER_CACHE = 256


class ClusterEventKind(enum.Enum):
    """Serf's member event names."""

    JOIN = "member-join"
    UPDATE = "member-update"
    LEAVE = "member-leave"
    FAIL = "member-failed"
    REAP = "member-reap"


@attrs.frozen
class ClusterEvent:
    kind: ClusterEventKind
    member: Member
    """The member as it is after the event (tags included)."""


_EVENT_KINDS = {
    EventKind.JOINED: ClusterEventKind.JOIN,
    EventKind.UPDATED: ClusterEventKind.UPDATE,
    EventKind.LEFT: ClusterEventKind.LEAVE,
    EventKind.FAILED: ClusterEventKind.FAIL,
    EventKind.REAPED: ClusterEventKind.REAP,
}
"""Suspicion and recovery are not member events in Serf either: a suspect is still alive."""

_STATUS = {
    MemberState.ALIVE: MemberStatus.ALIVE,
    MemberState.SUSPECT: MemberStatus.ALIVE,
    MemberState.DEAD: MemberStatus.FAILED,
    MemberState.LEFT: MemberStatus.LEFT,
}


class JoinFailed(Exception):
    """No seed answered within `retry-max` attempts."""


def network_tags(config: AgentConfig, tags: Mapping[str, str]) -> dict[str, str]:
    """`tags` plus Dkron's reserved tags that say where to reach this node: `rpc_addr`,
    `port` and, for a server waiting for others, `expect`."""
    out = dict(tags)
    host = (config.advertise_addr or config.bind_addr).host
    port = config.advertised_rpc_port
    out["rpc_addr"] = str(HostPort(host, port))
    out["port"] = str(port)
    if config.server and config.bootstrap_expect:
        out["expect"] = str(config.bootstrap_expect)
    return out


def reload_tags(config_path: Path) -> dict[str, str]:
    """The user tags in the config file, checked as at start (for SIGHUP). Tags given with
    `--tag` or DKRON_TAG at start are not re-read: the file's tags replace them."""
    value: Any = read_config_file(config_path).get("tags", {})
    where = f"{config_path}: key 'tags'"
    if not isinstance(value, dict):
        raise ConfigError(where, "expected a mapping of tags", key="tags")
    tags: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k.strip() or isinstance(v, bool):
            raise ConfigError(where, f"bad tag {k!r}: expected a non-empty name", key="tags")
        if not isinstance(v, str | int):
            raise ConfigError(where, f"tag {k!r}: expected a string value", key="tags")
        tags[k.strip()] = str(v)
    reserved = sorted(RESERVED_TAGS & set(tags))
    if reserved:
        raise ConfigError(
            where, f"reserved tag {', '.join(reserved)} is set by the agent", key="tags"
        )
    return tags


class GossipService:
    """Cluster membership for one agent. Create, start `run` in a nursery (it reports the
    advertised gossip address once listening and joined the seeds in the background), read
    `members()`, consume `subscribe()`, call `leave()` before stopping."""

    def __init__(
        self,
        config: AgentConfig,
        tags: Mapping[str, str],
        *,
        rng: random.Random | None = None,
        key_query_timeout: float = KEY_QUERY_TIMEOUT,
    ) -> None:
        """`tags`: the agent's node tags (user tags plus role, dc, region, version, server);
        the network tags are added here. Raises GossipConfigError naming a bad gossip key."""
        gossip_config = agent_gossip_config(
            config.profile,
            reconnect_timeout=config.serf_reconnect_timeout,
            retry_interval=config.retry_interval,
            retry_max=config.retry_max,
            encrypt=config.encrypt,
            max_datagram=config.gossip_max_datagram,
        )
        self._config = config
        self._rng = rng or random.Random()
        self._keyring = Keyring.of(parse_key(config.encrypt)) if config.encrypt else None
        self._node = GossipNode(
            config.node_name,
            config.bind_addr,
            tags=network_tags(config, tags),
            config=gossip_config,
            keyring=self._keyring,
            advertise=config.advertise_addr,
            rng=self._rng,
            on_key_message=self._on_key_message,
        )
        self._seeds = (*config.join, *config.retry_join)
        self._join_deadline = (
            config.retry_max * gossip_config.join_retry_ticks * TICK_MS / 1000
            if config.retry_max
            else math.inf
        )
        self._key_query_timeout = key_query_timeout
        self._subscribers: list[trio.MemorySendChannel[ClusterEvent]] = []
        self._queries: dict[int, KeyQuery] = {}
        self._answered = trio.Event()
        self._answers: collections.OrderedDict[tuple[Addr, int], KeyResponse] = (
            collections.OrderedDict()
        )
        self._running = False
        self._leaving = False

    # ---------------------------------------------------------------- running

    async def run(
        self, *, task_status: trio.TaskStatus[HostPort] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen, join the seeds (`join` and `retry-join`, retried every `retry-interval`),
        deliver member events. Raises JoinFailed when `retry-max` attempts got no answer."""
        async with trio.open_nursery() as nursery:
            addr: HostPort = await nursery.start(self._node.run)
            self._running = True
            nursery.start_soon(self._pump_events)
            if self._seeds:
                self._node.join(self._seeds)
                log.info("gossip joining", seeds=", ".join(str(s) for s in self._seeds))
                nursery.start_soon(self._watch_join)
            task_status.started(addr)

    async def _watch_join(self) -> None:
        with trio.move_on_after(self._join_deadline):
            await self._node.wait_joined()
            log.info("gossip joined", members=len(self._node.members()))
            return
        raise JoinFailed(
            f"no seed answered after {self._config.retry_max} attempts: "
            + ", ".join(str(s) for s in self._seeds)
        )

    async def _pump_events(self) -> None:
        async for event in self._node.events:
            kind = _EVENT_KINDS.get(event.kind)
            if kind is None:
                continue
            out = ClusterEvent(kind, self._api_member(event.member))
            log.info("gossip member event", event=kind.value, member=out.member.name)
            for channel in list(self._subscribers):
                try:
                    channel.send_nowait(out)
                except trio.WouldBlock:
                    log.warning("gossip event dropped: subscriber is behind", event=kind.value)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._subscribers.remove(channel)

    # ---------------------------------------------------------------- membership

    @property
    def stats(self) -> GossipStats:
        return self._node.stats

    def members(self) -> list[Member]:
        """Every member known, this one included, in name order (empty before `run`)."""
        if not self._running:
            return []
        return [self._api_member(m) for m in self._node.members()]

    def local_member(self) -> Member:
        return self._api_member(self._node.core.local())

    def _api_member(self, m: SwimMember) -> Member:
        status = _STATUS[m.state]
        if m.name == self._config.node_name and self._leaving:
            status = MemberStatus.LEFT if self._node.core.leave_done else MemberStatus.LEAVING
        return Member(m.name, m.addr[0], m.addr[1], dict(m.tags), status)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Wait until `predicate()` holds; checked after every tick and datagram."""
        await self._node.wait_until(predicate)

    def subscribe(self) -> trio.MemoryReceiveChannel[ClusterEvent]:
        """A channel of member events from now on (close it when done)."""
        send, receive = trio.open_memory_channel[ClusterEvent](SUBSCRIBER_BUFFER)
        self._subscribers.append(send)
        return receive

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Replace this node's tags (the agent's node tags; network tags are added again).
        Raises TagsTooLarge beyond 512 encoded bytes, changing nothing."""
        self._node.set_tags(network_tags(self._config, tags))
        log.info("gossip tags updated", tags=len(tags))

    async def leave(self) -> None:
        """Announce our leave and wait (at most LEAVE_TIMEOUT) until it has gone out."""
        if not self._running or self._leaving:
            return
        self._leaving = True
        log.info("gossip leaving")
        with trio.move_on_after(LEAVE_TIMEOUT):
            await self._node.leave()

    # ---------------------------------------------------------------- keyring

    async def keyring(self, op: KeyOp, key: bytes) -> KeyringReport:
        """Apply a keyring operation on every live member; `key` is empty for LIST. Raises
        KeyringUnavailable without encryption, KeyringError if this member refuses it (then
        nothing was asked of anyone)."""
        ring = self._keyring
        if ring is None or not self._running:
            raise KeyringUnavailable(
                "gossip encryption is not enabled on this agent (start it with encrypt)"
            )
        ring.check(op, key)
        me = self._config.node_name
        live = (MemberState.ALIVE, MemberState.SUSPECT)
        targets = {m.name: m.addr for m in self._node.members() if m.state in live}
        request_id = self._rng.getrandbits(63)
        query = KeyQuery.start(request_id, op, key, targets, KEY_QUERY_RETRY_TICKS, local=me)
        self._queries[request_id] = query
        log.info("keyring operation", op=op.name.lower(), members=len(targets))
        try:
            with trio.move_on_after(self._key_query_timeout):
                while not query.done:
                    for addr, request in query.due(self._node.core.now):
                        self._node.send(addr, (request,))
                    if query.done:
                        break
                    with trio.move_on_after(KEY_QUERY_RETRY_TICKS * TICK_MS / 1000):
                        await self._answered.wait()
        finally:
            del self._queries[request_id]
        ring.apply(op, key)
        query.answer(KeyResponse(request_id, me, "", tuple(ring.keys())))
        report = query.report()
        log.info(
            "keyring operation done", op=op.name.lower(), answered=len(report.answered),
            errors=len(report.errors), missing=len(report.missing),
        )  # fmt: skip
        return report

    def _on_key_message(self, src: Addr, msg: KeyRequest | KeyResponse) -> None:
        if isinstance(msg, KeyResponse):
            query = self._queries.get(msg.id)
            if query is not None:
                query.answer(msg)
                self._answered.set()
                self._answered = trio.Event()
            return
        cached = self._answers.get((src, msg.id))
        if cached is None:
            cached = self._apply_request(msg)
            self._answers[(src, msg.id)] = cached
            if len(self._answers) > _ANSWER_CACHE:
                self._answers.popitem(last=False)
        self._node.send(src, (cached,))

    def _apply_request(self, request: KeyRequest) -> KeyResponse:
        me = self._config.node_name
        ring = self._keyring
        if ring is None:
            return KeyResponse(request.id, me, "gossip encryption is not enabled", ())
        error = ""
        try:
            ring.apply(request.op, request.key)
        except ValueError as exc:
            error = str(exc)
        log.info("keyring request applied", op=request.op.name.lower(), error=error or None)
        return KeyResponse(request.id, me, error, tuple(ring.keys()))
