"""RaftServer: one server's part of the replicated state (DESIGN.md §3).

It owns the RPC listener, `raft.db`, the Raft node and its transport, and keeps them in step
with the replicated state in `state.db` (a `ReplicaStore`):

* **Formation.** On a fresh data dir a server bootstraps a one-node cluster when it has
  nobody to join and expects at most one server; with `bootstrap-expect` N it greets the
  servers gossip reports (`HELLO`, to their `rpc_addr`) until it knows N, and all of them
  bootstrap the same configuration; told to join and expecting nothing, it asks them to
  add it (`JOIN`).
* **Addresses.** Each server's name and RPC address live in the replicated state (membership
  changes carry them; the leader records bootstrap members with `SetMember`), so a restart
  or a snapshot brings the address book back; greetings to the join addresses fill it in
  before anything is committed.
* **Snapshots.** After `snapshot_threshold` applied entries the state is imaged
  (`ReplicaStore.snapshot_image`) and the log before it compacted; a server that falls
  behind the log receives the image in chunks. At start, a state older than the log's
  snapshot (a crash between installing and applying it) is restored from that snapshot.
* **Leadership.** `lead(work)` runs `work` while this server leads, after a barrier entry of
  its term, in a cancel scope that ends with the term.
"""

import random
import ssl
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

import attrs
import trio

from dkron_trio.cluster import wire
from dkron_trio.cluster.command_log import RaftCommandLog
from dkron_trio.cluster.config import DEFAULT_ELECTION_TICKS, ClusterConfig
from dkron_trio.cluster.recovery import ingest_peers
from dkron_trio.commands import SetMember, encode_command, encode_member
from dkron_trio.config import HostPort, parse_host_port
from dkron_trio.execution import Execution, MissedTick
from dkron_trio.fsm import StoreStateMachine
from dkron_trio.logs import get_logger
from dkron_trio.raft.errors import RaftError
from dkron_trio.raft.node import NodeConfig, RaftNode
from dkron_trio.raft.sqlite_storage import DurableWriteSink, SqliteRaftStorage
from dkron_trio.raft.types import NONE, ConfChange, ConfChangeType, ConfState, RaftConfig
from dkron_trio.rpc.config import RpcConfig
from dkron_trio.rpc.errors import RpcError
from dkron_trio.rpc.peer import call_address
from dkron_trio.rpc.raft_transport import RaftRpcTransport
from dkron_trio.rpc.server import RpcServer
from dkron_trio.store.base import ClusterUnavailable, RaftMember
from dkron_trio.store.replica import ReplicaStore

log = get_logger(__name__)

_GREETING_RETRY = 0.5
"""Seconds between rounds of greetings while a cluster forms."""
_GREETING_TIMEOUT = 2.0
_TRANSFER_WAIT = 5.0
_WORK_RESTART = 1.0
"""Pause before the leader's work runs again after a write of it failed."""


class NotReady(Exception):
    """An RPC that needs the Raft node arrived before it started."""


@attrs.define(eq=False)
class RaftServer:
    """Create with `RaftServer(config, store)`; `await nursery.start(server.run)`."""

    _config: ClusterConfig
    _store: ReplicaStore
    _rng: random.Random = attrs.Factory(random.Random)
    _rpc_config: RpcConfig = attrs.Factory(RpcConfig)
    _on_jobs: Callable[[list[str]], None] | None = None
    _seeds: Callable[[], Sequence[HostPort]] | None = None
    """RPC addresses of other servers as gossip knows them now."""
    _on_executions: Callable[[list[Execution]], None] | None = None
    _on_missed: Callable[[list[MissedTick]], None] | None = None
    """Told the missed ticks each applied batch recorded (metrics)."""
    _on_durable_write: DurableWriteSink | None = None
    """Told the seconds each fsync'd raft.db transaction took (metrics)."""
    _server_tls: ssl.SSLContext | None = None
    _client_tls: ssl.SSLContext | None = None
    """RPC over mutual TLS when set (`dkron_trio.tls`); plain TCP otherwise."""
    """Told the execution records each applied batch wrote (outcome waiters)."""
    """Told the names of jobs set or deleted by each applied batch (the scheduler's feed)."""
    _rpc: RpcServer = attrs.field(init=False)
    _node: RaftNode | None = attrs.field(init=False, default=None)
    _transport: RaftRpcTransport | None = attrs.field(init=False, default=None)
    _log: RaftCommandLog | None = attrs.field(init=False, default=None)
    _members: dict[int, RaftMember] = attrs.field(init=False, factory=dict)
    """The replicated address book (refreshed after each membership change)."""
    _known: dict[int, RaftMember] = attrs.field(init=False, factory=dict)
    """Servers met through greetings, not necessarily members yet."""
    _bootstrap: tuple[RaftMember, ...] = attrs.field(init=False, default=())
    _members_dirty: trio.Event = attrs.field(init=False, factory=trio.Event)
    rpc_port: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._rpc = RpcServer(self._rpc_config, ssl_context=self._server_tls)
        self._known[self.me.node_id] = self.me

    # -- what the agent uses ----------------------------------------------------------------

    @property
    def me(self) -> RaftMember:
        c = self._config
        return RaftMember(c.node_id, c.node_name, str(c.advertise))

    @property
    def node(self) -> RaftNode:
        if self._node is None:
            raise NotReady("the raft node has not started")
        return self._node

    @property
    def fence(self) -> int:
        """The term: orders to workers carry it (`ClusterServer.fence`)."""
        return self.node.term

    @property
    def command_log(self) -> RaftCommandLog:
        if self._log is None:
            raise NotReady("the raft node has not started")
        return self._log

    @property
    def rpc(self) -> RpcServer:
        """The listener, for other services to add their handlers to."""
        return self._rpc

    def members(self) -> list[RaftMember]:
        """Every known server: the address book, plus this one before it is recorded."""
        found = dict(self._members)
        found.setdefault(self.me.node_id, self.me)
        return [found[i] for i in sorted(found)]

    def member(self, node_id: int) -> RaftMember | None:
        return self._members.get(node_id) or self._known.get(node_id)

    async def lead(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` in every term this server leads, after that term's barrier; cancelled
        when the term ends. Returns only when cancelled."""
        node = self.node
        version = -1
        while True:
            version, change = await node.next_leadership(version)
            if not change.is_leader:
                continue
            term = change.term
            async with trio.open_nursery() as nursery:

                async def one_term(term: int = term) -> None:
                    try:
                        await node.barrier()
                        await self._record_members()
                    except RaftError as exc:
                        log.info("leadership ended before its barrier", term=term, error=str(exc))
                        return
                    log.info("leading", term=term)
                    while True:
                        try:
                            await work()
                        except* ClusterUnavailable as group:  # alone or from a nursery
                            errors = "; ".join(str(e) for e in group.exceptions)
                            log.warning("leader work failed, restarting", term=term, error=errors)
                        await trio.sleep(_WORK_RESTART)

                nursery.start_soon(one_term)
                while change.is_leader and change.term == term:
                    version, change = await node.next_leadership(version)
                nursery.cancel_scope.cancel()
            log.info("leadership lost", term=term)

    async def leave(self) -> None:
        """Hand leadership to the most up-to-date other voter, if this server leads (waits
        up to a few seconds for the handover)."""
        node = self.node
        if not node.is_leader:
            return
        status = node.status()
        others = [(p.match, i) for i, p in status.progress.items() if i != node.node_id]
        voters = status.conf_state.voters
        candidates = sorted((m, i) for m, i in others if i in voters)
        if not candidates:
            return
        target = candidates[-1][1]
        try:
            node.transfer_leader(target)
        except RaftError as exc:
            log.warning("leadership transfer refused", target=target, error=str(exc))
            return
        with trio.move_on_after(_TRANSFER_WAIT):
            version = -1
            while node.is_leader:
                version, _ = await node.next_leadership(version)
        log.info("leadership transferred", target=target, done=not node.is_leader)

    # -- running ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        config = self._config
        self._register_handlers()
        storage: SqliteRaftStorage | None = None
        try:
            async with trio.open_nursery() as nursery:
                self.rpc_port = await nursery.start(self._rpc.run, config.rpc_bind)
                fresh = not config.raft_path.exists()
                nursery.start_soon(self._greet_seeds)
                conf = await self._formation() if fresh else None
                storage = await trio.to_thread.run_sync(
                    partial(
                        SqliteRaftStorage,
                        config.raft_path,
                        conf,
                        on_durable_write=self._on_durable_write,
                    )
                )
                if storage.repair is not None:
                    log.warning("raft log tail cut", **attrs.asdict(storage.repair))
                await self._catch_up(storage)
                recovery = await ingest_peers(config.data_dir, storage, self._store)
                if recovery is not None:
                    log.warning(
                        "raft configuration recovered from peers.json",
                        servers=[m.name for m in recovery.members],
                        index=recovery.index,
                    )
                    for member in recovery.members:
                        self._known[member.node_id] = member
                await self._load_members()
                transport = RaftRpcTransport(
                    config.node_id,
                    self._rpc,
                    self._addresses(),
                    self._rpc_config,
                    self._rng,
                    ssl_context=self._client_tls,
                )
                machine = StoreStateMachine(
                    self._store,
                    self._members_dirty.set,
                    self._on_jobs,
                    on_executions=self._on_executions,
                    on_missed=self._on_missed,
                )
                node = RaftNode(
                    config.node_id,
                    storage,
                    transport,
                    machine,
                    NodeConfig(
                        RaftConfig(election_ticks=DEFAULT_ELECTION_TICKS),
                        raft_multiplier=config.raft_multiplier,
                    ),
                    self._rng,
                    await self._store.applied_index(),
                )
                self._transport, self._node = transport, node
                transport.on_peer_down = node.report_down
                self._log = RaftCommandLog(node, transport, config, machine.expect)
                await nursery.start(transport.run)
                await nursery.start(node.run)
                nursery.start_soon(self._follow_members)
                nursery.start_soon(self._take_snapshots)
                if conf is not None and conf.voters == {config.node_id}:
                    node.campaign()
                elif fresh and conf is None:
                    nursery.start_soon(self._join)
                log.info(
                    "raft server started",
                    node=config.node_name,
                    id=config.node_id,
                    rpc=str(config.advertise),
                    fresh=fresh,
                )
                task_status.started()
        finally:
            if storage is not None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(storage.close)

    async def _catch_up(self, storage: SqliteRaftStorage) -> None:
        snapshot = storage.snapshot()
        applied = await self._store.applied_index()
        if snapshot.meta.index > applied and snapshot.data:
            log.warning(
                "state behind the raft snapshot, restoring it",
                applied=applied,
                snapshot=snapshot.meta.index,
            )
            await self._store.restore_image(snapshot.data)

    # -- formation --------------------------------------------------------------------------

    async def _formation(self) -> ConfState | None:
        """The initial configuration to bootstrap with, or None to join an existing one."""
        config = self._config
        if config.bootstrap_expect <= 1:
            if config.joining:
                return None
            self._bootstrap = (self.me,)
            return ConfState(voters=frozenset({config.node_id}))
        while True:
            for address in self._seed_addresses():
                hello = await self._greet(address)
                if hello is not None and hello.formed:
                    if any(m.node_id == config.node_id for m in hello.servers):
                        return self._bootstrap_with(hello.servers)
                    return None
            if len(self._known) >= config.bootstrap_expect:
                return self._bootstrap_with(tuple(self._known.values()))
            await trio.sleep(_GREETING_RETRY)

    def _bootstrap_with(self, servers: tuple[RaftMember, ...]) -> ConfState:
        self._bootstrap = tuple(sorted(servers, key=lambda m: m.node_id))
        for member in servers:
            self._known[member.node_id] = member
        log.info("bootstrapping", servers=[m.name for m in self._bootstrap])
        return ConfState(voters=frozenset(m.node_id for m in servers))

    def _hello(self) -> wire.Hello:
        node = self._node
        formed = node is not None and bool(node.status().conf_state.voters)
        if formed and self._bootstrap and node is not None and node.applied == 0:
            return wire.Hello(self._bootstrap, self._config.bootstrap_expect, True)
        servers = tuple({**self._known, **self._members}.values())
        return wire.Hello(servers, self._config.bootstrap_expect, formed)

    async def _greet(self, address: HostPort) -> wire.Hello | None:
        try:
            reply = await self._call_address(address, wire.HELLO, wire.encode_hello(self._hello()))
            hello = wire.decode_hello(reply)
        except (RpcError, wire.WireError) as exc:
            log.debug("greeting failed", address=str(address), error=str(exc))
            return None
        for member in hello.servers:
            self._learn(member)
        return hello

    def _seed_addresses(self) -> list[HostPort]:
        return [] if self._seeds is None else list(self._seeds())

    async def _greet_seeds(self) -> None:
        """Greet every seed once it answers: fills the address book of a restarted server
        before its committed members are known to be current."""
        greeted: set[HostPort] = set()
        while True:
            for address in self._seed_addresses():
                if address not in greeted and await self._greet(address) is not None:
                    greeted.add(address)
            await trio.sleep(_GREETING_RETRY)

    def _learn(self, member: RaftMember) -> None:
        self._known.setdefault(member.node_id, member)
        if (
            self._transport is not None
            and member.node_id not in self._members
            and member.node_id != self._config.node_id
        ):
            self._transport.set_address(member.node_id, parse_host_port(member.address))

    async def _join(self) -> None:
        """Ask the join addresses to add this server until one has (or it is a voter)."""
        body = wire.encode_member(self.me)
        while self._config.node_id not in self.node.status().conf_state.voters:
            for address in self._seed_addresses():
                try:
                    await self._call_address(address, wire.JOIN, body)
                except RpcError as exc:
                    log.info("join failed, retrying", address=str(address), error=str(exc))
                    continue
                log.info("joined", address=str(address))
                return
            await trio.sleep(_GREETING_RETRY)

    async def _call_address(self, address: HostPort, kind: str, body: bytes) -> bytes:
        return await call_address(
            address,
            kind,
            body,
            config=self._rpc_config,
            rng=self._rng,
            reply_within=_GREETING_TIMEOUT,
            ssl_context=self._client_tls,
        )

    # -- membership -------------------------------------------------------------------------

    def _addresses(self) -> dict[int, HostPort]:
        found = {**self._known, **self._members}
        return {
            i: parse_host_port(m.address) for i, m in found.items() if i != self._config.node_id
        }

    async def _load_members(self) -> None:
        self._members = {m.node_id: m for m in await self._store.raft_members()}

    async def _follow_members(self) -> None:
        while True:
            await self._members_dirty.wait()
            self._members_dirty = trio.Event()
            await self._load_members()
            transport = self._transport
            if transport is None:
                continue
            voters = self.node.status().conf_state.members
            for node_id, address in self._addresses().items():
                if node_id in self._members or node_id in voters:
                    transport.set_address(node_id, address)

    async def _record_members(self) -> None:
        """As a new leader: record every configured server whose address is not recorded."""
        node = self.node
        for node_id in sorted(node.status().conf_state.members):
            known = self.member(node_id)
            recorded = self._members.get(node_id)
            if node_id == self._config.node_id:
                known = self.me
            if known is not None and known != recorded:
                cmd = SetMember(known.node_id, known.name, known.address)
                await node.propose(encode_command(cmd))

    # -- snapshots --------------------------------------------------------------------------

    async def _take_snapshots(self) -> None:
        node = self.node
        threshold = self._config.snapshot_threshold
        last = node.status().applied
        while True:
            await node.wait_applied(last + threshold)
            applied, image = await self._store.snapshot_image()
            await node.wait_applied(applied)  # the store may be ahead of the node's count
            await node.compact(applied, image)
            log.info("snapshot taken", index=applied, size=len(image))
            last = applied

    # -- RPC handlers -----------------------------------------------------------------------

    def _register_handlers(self) -> None:
        self._rpc.on_request(wire.APPLY, self._on_apply)
        self._rpc.on_request(wire.HELLO, self._on_hello)
        self._rpc.on_request(wire.JOIN, self._on_join)
        self._rpc.on_request(wire.PEERS, self._on_peers)
        self._rpc.on_request(wire.REMOVE_PEER, self._on_remove_peer)

    async def _on_apply(self, body: bytes) -> bytes:
        return await self.command_log.apply_here(body)

    async def _on_hello(self, body: bytes) -> bytes:
        for member in wire.decode_hello(body).servers:
            self._learn(member)
        return wire.encode_hello(self._hello())

    async def _on_join(self, body: bytes) -> bytes:
        member = wire.decode_member(body)
        node = self.node
        if not node.is_leader:
            return await self._forward(wire.JOIN, body)
        self._learn(member)
        if member.node_id in node.status().conf_state.voters:
            if self._members.get(member.node_id) != member:
                cmd = SetMember(member.node_id, member.name, member.address)
                await node.propose(encode_command(cmd))
            return b""
        self._transport_set(member)
        change = ConfChange(
            ConfChangeType.ADD_NODE, member.node_id, encode_member(member.name, member.address)
        )
        await node.propose_conf_change(change)
        log.info("server added", name=member.name, id=member.node_id, address=member.address)
        return b""

    def _transport_set(self, member: RaftMember) -> None:
        if self._transport is not None:
            self._transport.set_address(member.node_id, parse_host_port(member.address))

    async def _on_peers(self, body: bytes) -> bytes:
        status = self.node.status()
        peers = []
        for node_id in sorted(status.conf_state.members):
            member = self.member(node_id) or RaftMember(node_id, "?", "?")
            voter = node_id in status.conf_state.voters
            peers.append(wire.Peer(member, voter, node_id == status.leader_id))
        return wire.encode_peers(peers)

    async def _on_remove_peer(self, body: bytes) -> bytes:
        ref = wire.decode_peer_ref(body)
        node = self.node
        if not node.is_leader:
            return await self._forward(wire.REMOVE_PEER, body)
        status = node.status()
        matches = [
            i
            for i in status.conf_state.members
            if i == ref or (self.member(i) or RaftMember(i, "", "")).name == ref
        ]
        if not matches:
            raise ValueError(f"no server {ref!r} in the raft configuration")
        await node.propose_conf_change(ConfChange(ConfChangeType.REMOVE_NODE, matches[0]))
        log.info("server removed", id=matches[0])
        return b""

    async def _forward(self, kind: str, body: bytes) -> bytes:
        node = self.node
        if node.leader_id == NONE or self._transport is None:
            raise ClusterUnavailable("no leader known; try again")
        with trio.fail_after(self._config.forward_timeout):
            return await self._transport.call(node.leader_id, kind, body)
