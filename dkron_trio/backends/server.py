"""BackendServer: what a server runs instead of `RaftServer` when `backend` names an
external store (DESIGN.md §3's narrow cluster interface, over a `LogDriver`).

It owns the RPC listener (workers report and stream output to it, as with Raft), the tail
that keeps `state.db` a replica of the backend's command log, the lease campaign, and the
leader's snapshots: every `snapshot_threshold` applied entries the leader saves an image
of its replica (the same image a Raft snapshot holds) and the backend drops the entries
before it; a server starting behind the first kept entry loads that image first.
"""

import ssl
from collections.abc import Awaitable, Callable

import attrs
import trio

from dkron_trio.backends.command_log import BackendCommandLog
from dkron_trio.backends.leadership import Leadership
from dkron_trio.backends.tail import LogTail
from dkron_trio.cluster.config import ClusterConfig
from dkron_trio.execution import Execution, MissedTick
from dkron_trio.fsm import StoreStateMachine
from dkron_trio.logs import get_logger
from dkron_trio.rpc.config import RpcConfig
from dkron_trio.rpc.server import RpcServer
from dkron_trio.store.backend import BackendError, Lease, LogDriver
from dkron_trio.store.replica import ReplicaStore

log = get_logger(__name__)

DEFAULT_LEASE_TTL = 10.0
"""Seconds a leader's lease outlives its last renewal (the failover time after a crash)."""
CLOSE_WAIT = 2.0
SNAPSHOT_RETRY = 5.0


@attrs.define(eq=False)
class BackendServer:
    """Create with `BackendServer(config, store, driver)`; `await nursery.start(server.run)`."""

    _config: ClusterConfig
    _store: ReplicaStore
    _driver: LogDriver
    _lease_ttl: float = DEFAULT_LEASE_TTL
    _rpc_config: RpcConfig = attrs.Factory(RpcConfig)
    _on_jobs: Callable[[list[str]], None] | None = None
    """Told the names of jobs set or deleted by each applied batch (the scheduler's feed)."""
    _on_executions: Callable[[list[Execution]], None] | None = None
    """Told the execution records each applied batch wrote (outcome waiters)."""
    _on_missed: Callable[[list[MissedTick]], None] | None = None
    _server_tls: ssl.SSLContext | None = None
    _rpc: RpcServer = attrs.field(init=False)
    _tail: LogTail = attrs.field(init=False)
    _leadership: Leadership = attrs.field(init=False)
    _log: BackendCommandLog = attrs.field(init=False)
    rpc_port: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._rpc = RpcServer(self._rpc_config, ssl_context=self._server_tls)
        fsm = StoreStateMachine(
            self._store,
            on_jobs=self._on_jobs,
            on_executions=self._on_executions,
            on_missed=self._on_missed,
        )
        self._tail = LogTail(self._driver, self._store, fsm)
        self._leadership = Leadership(
            self._driver, self._config.node_name, self._lease_ttl, self._barrier
        )
        self._log = BackendCommandLog(
            self._driver, self._tail, self._leadership, self._config.apply_timeout
        )

    # -- what the agent uses ----------------------------------------------------------------

    @property
    def command_log(self) -> BackendCommandLog:
        return self._log

    @property
    def rpc(self) -> RpcServer:
        """The listener, for other services to add their handlers to."""
        return self._rpc

    @property
    def fence(self) -> int:
        """The fence of the current lease: orders to workers carry it (Raft's term)."""
        return self._leadership.fence

    @property
    def is_leader(self) -> bool:
        return self._leadership.current is not None

    @property
    def leader_name(self) -> str | None:
        """The node name of the lease holder as last seen, if any."""
        lease = self._leadership.known_leader
        return None if lease is None else lease.holder

    @property
    def applied(self) -> int:
        return self._tail.applied

    async def lead(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` while this server holds the lease (after its barrier), in a cancel
        scope per lease. Returns only when cancelled."""
        await self._leadership.lead(work)

    async def leave(self) -> None:
        """Give the lease up now (graceful shutdown): another server takes over at once."""
        await self._leadership.leave()

    # -- running ----------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self.rpc_port = await nursery.start(self._rpc.run, self._config.rpc_bind)
                await nursery.start(self._tail.run)
                await nursery.start(self._leadership.run)
                nursery.start_soon(self._take_snapshots)
                log.info(
                    "backend server started",
                    node=self._config.node_name,
                    rpc=str(self._config.advertise),
                    applied=self._tail.applied,
                )
                task_status.started()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_WAIT):
                await self._driver.aclose()

    async def _barrier(self, lease: Lease) -> None:
        await self._log.append(b"", lease)

    async def _take_snapshots(self) -> None:
        threshold = self._config.snapshot_threshold
        last = self._tail.applied
        while True:
            await self._tail.wait_applied(last + threshold)
            applied = self._tail.applied
            if self._leadership.current is not None:
                applied, image = await self._store.snapshot_image()
                try:
                    await self._driver.save_snapshot(applied, image)
                except BackendError as exc:
                    log.warning("snapshot not saved", index=applied, error=str(exc))
                    await trio.sleep(SNAPSHOT_RETRY)
                    continue
                log.info("snapshot saved", index=applied, size=len(image))
            last = applied
