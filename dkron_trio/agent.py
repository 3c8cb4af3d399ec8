"""The agent process: one nursery tree that owns every service (DESIGN.md §2).

The local replica (``state.db``) is opened before the nursery and closed after it. Inside it:
gossip (membership and tags; the Raft server finds the other servers through it), the Raft
server (RPC listener, ``raft.db``, the node), the run manager (the local executor
pool) writing through the cluster, the scheduler (run only while this server leads, after a
barrier, in a cancel scope per term, and told of every job written through any server) and
the HTTP API. With an external ``backend`` (etcd, ...), a `BackendServer` stands in for the
Raft server: the state is the backend's command log, leadership its lease. SIGTERM or
SIGINT starts a graceful shutdown: stop scheduling, let running executions finish within a
grace period, then cancel the rest.
"""

import gc
import signal
from pathlib import Path

import attrs
import trio

from dkron_trio import __version__
from dkron_trio.backends.registry import driver_opener, is_external
from dkron_trio.backends.server import BackendServer
from dkron_trio.backends.view import BackendClusterView
from dkron_trio.clock import WallClock
from dkron_trio.cluster.config import ClusterConfig, advertised_host
from dkron_trio.cluster.replicated import ReplicatedStore
from dkron_trio.cluster.server import RaftServer
from dkron_trio.cluster.serving import ClusterServer
from dkron_trio.cluster.view import RaftClusterView
from dkron_trio.config import AgentConfig, ConfigError, HostPort
from dkron_trio.dispatch import wire as dispatch_wire
from dkron_trio.dispatch.journal import Journal
from dkron_trio.dispatch.members import address_of, alive_nodes, alive_servers
from dkron_trio.dispatch.pool import PeerPool
from dkron_trio.dispatch.remote import RemoteRuns
from dkron_trio.dispatch.worker import Worker
from dkron_trio.execution import Execution
from dkron_trio.executors.base import Executor
from dkron_trio.executors.registry import get_executor
from dkron_trio.gossip.service import GossipService, reload_tags
from dkron_trio.gossip.swim_types import TagsTooLarge
from dkron_trio.http.context import ClusterView
from dkron_trio.http.server import HttpServer
from dkron_trio.logs import get_logger, setup_logging
from dkron_trio.loop_lag import LoopLag
from dkron_trio.metrics import Metrics
from dkron_trio.notify.service import run_execution_outputs
from dkron_trio.rpc.config import RpcConfig
from dkron_trio.rpc.server import RpcServer
from dkron_trio.runs import RunManager
from dkron_trio.scheduler import Scheduler
from dkron_trio.store.sqlite import open_sqlite_store
from dkron_trio.tls import TlsError, rpc_client_context, rpc_server_context

log = get_logger(__name__)

SHUTDOWN_GRACE_SECONDS = 30.0


def node_tags(config: AgentConfig) -> dict[str, str]:
    """The user's tags plus Dkron's reserved ones; servers also carry ``dkron_server=true``
    so that Dkron's getting-started job (tags ``{"dkron_server": "true:1"}``) runs verbatim."""
    tags = dict(config.tags)
    tags.update(
        {
            "role": "dkron",
            "dc": config.datacenter,
            "region": config.region,
            "version": __version__,
        }
    )
    if config.server:
        tags["server"] = "true"
        tags.setdefault("dkron_server", "true")
    return tags


@attrs.define
class Agent:
    """A running agent; `run` is its whole life."""

    config: AgentConfig
    clock: WallClock | None = None
    scheduler: Scheduler | None = None
    runs: RunManager | None = None
    http: HttpServer | None = None
    raft: RaftServer | None = None
    gossip: GossipService | None = None
    _stop_requested: trio.Event = attrs.field(factory=trio.Event)

    def request_stop(self) -> None:
        """Start a graceful shutdown, as SIGTERM does (``POST /v1/leave``)."""
        self._stop_requested.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        if not self.config.server:
            await self._run_worker(task_status=task_status)
            return
        data_dir = Path(self.config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        clock = self.clock or WallClock.system()
        tags = node_tags(self.config)
        # state.db replicates raft.db (or an external backend's log), which is fsync'd and
        # replays whatever a power loss undid here: its own commits need no fsync.
        async with open_sqlite_store(data_dir / "state.db", durable=False) as local:
            changed_jobs: list[str] = []
            jobs_changed = trio.Event()

            def on_jobs(names: list[str]) -> None:
                changed_jobs.extend(names)
                jobs_changed.set()

            gossip = GossipService(_with_advertise(self.config), tags)
            self.gossip = gossip

            name, region = self.config.node_name, self.config.region
            remote_holder: list[RemoteRuns] = []

            def on_executions(executions: list[Execution]) -> None:
                for remote in remote_holder:
                    remote.executions_applied(executions)

            metrics = Metrics() if self.config.enable_prometheus else None
            cluster_config = ClusterConfig.from_agent(self.config)
            server_tls, client_tls = (
                rpc_server_context(self.config),
                rpc_client_context(self.config),
            )
            rpc_config = RpcConfig(max_frame_size=self.config.rpc_max_frame_size)
            on_missed = None if metrics is None else metrics.on_missed
            server: ClusterServer
            if is_external(self.config.backend):
                open_driver = driver_opener(self.config.backend)
                server = BackendServer(
                    cluster_config,
                    local,
                    open_driver(self.config.backend_machines, self.config.keyspace),
                    lease_ttl=self.config.backend_lease_ttl.total_seconds(),
                    rpc_config=rpc_config,
                    server_tls=server_tls,
                    on_jobs=on_jobs,
                    on_executions=on_executions,
                    on_missed=on_missed,
                )
                cluster: ClusterView = BackendClusterView(server, gossip)
            else:
                raft = RaftServer(
                    cluster_config,
                    local,
                    rpc_config=rpc_config,
                    server_tls=server_tls,
                    client_tls=client_tls,
                    on_jobs=on_jobs,
                    on_executions=on_executions,
                    on_missed=on_missed,
                    on_durable_write=None if metrics is None else metrics.on_raft_durable_write,
                    seeds=lambda: alive_servers(gossip, name),
                )
                self.raft = server = raft
                cluster = RaftClusterView(raft, tags, gossip)
            pool = PeerPool(rpc_config, ssl_context=client_tls)
            journal = await Journal.open(data_dir / "agent.db")
            worker = Worker(
                name,
                journal,
                clock,
                pool,
                lambda: alive_servers(gossip, name),
                max_concurrent=self.config.max_concurrent_executions,
                executors=self._executor,
            )
            worker.register(server.rpc)
            async with trio.open_nursery() as nursery:
                await nursery.start(gossip.run)
                await nursery.start(pool.run)
                await nursery.start(server.run)
                store = ReplicatedStore(local, server.command_log)
                remote = RemoteRuns(
                    pool,
                    store,
                    clock,
                    lambda node: address_of(gossip, node),
                    lambda: server.fence,
                    str(cluster_config.advertise),
                    self.config.run_lease.total_seconds(),
                )
                remote_holder.append(remote)
                await nursery.start(remote.watch)
                runs = RunManager(
                    store,
                    clock,
                    name,
                    tags,
                    remote=remote,
                    nodes=lambda: alive_nodes(gossip, region),
                    max_concurrent=self.config.max_concurrent_executions,
                    executors=self._executor,
                )
                _serve_reports(server.rpc, store, runs)
                if metrics is not None:
                    runs.add_finished_listener(metrics.on_finished)
                    if self.raft is not None:
                        metrics.watch_raft(self.raft.node.status)
                    metrics.watch_members(gossip.members)
                await nursery.start(worker.run)
                await nursery.start(run_execution_outputs, self.config, runs, store)
                loop_lag = LoopLag()
                await nursery.start(loop_lag.run)
                scheduler = Scheduler(store, runs, clock, lag=loop_lag.value)
                self.runs, self.scheduler = runs, scheduler
                await nursery.start(runs.run)
                scheduling = trio.CancelScope()

                async def schedule() -> None:
                    with scheduling:
                        await server.lead(scheduler.run)

                async def feed_scheduler() -> None:
                    nonlocal jobs_changed
                    while True:
                        await jobs_changed.wait()
                        jobs_changed = trio.Event()
                        names = list(dict.fromkeys(changed_jobs))
                        changed_jobs.clear()
                        async with trio.open_nursery() as rereads:  # their reads group
                            for name in names:
                                rereads.start_soon(scheduler.job_changed, name)

                nursery.start_soon(schedule)
                nursery.start_soon(feed_scheduler)
                nursery.start_soon(self._reload_tags_on_sighup, gossip)
                http = HttpServer.for_agent(
                    self.config,
                    store=store,
                    runs=runs,
                    scheduler=scheduler,
                    clock=clock,
                    version=__version__,
                    tags=tags,
                    request_leave=self.request_stop,
                    cluster=cluster,
                    gossip=gossip,
                    state_image=local.snapshot_image,
                    metrics=metrics,
                )
                self.http = http
                await nursery.start(http.run)
                log.info(
                    "agent started",
                    node=self.config.node_name,
                    data_dir=str(data_dir),
                    version=__version__,
                )
                task_status.started()
                await self._wait_for_signal()
                log.info("agent stopping", grace_seconds=SHUTDOWN_GRACE_SECONDS)
                scheduling.cancel()
                await server.leave()
                await gossip.leave()
                with trio.move_on_after(SHUTDOWN_GRACE_SECONDS):
                    await runs.wait_idle()
                await http.shutdown()
                nursery.cancel_scope.cancel()
            await journal.close()
        log.info("agent stopped", node=self.config.node_name)

    async def _run_worker(self, *, task_status: trio.TaskStatus[None]) -> None:
        """Agent mode (no ``--server``): gossip, and a worker running what servers order."""
        data_dir = Path(self.config.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        clock = self.clock or WallClock.system()
        name = self.config.node_name
        gossip = GossipService(_with_advertise(self.config), node_tags(self.config))
        self.gossip = gossip
        rpc_config = RpcConfig(max_frame_size=self.config.rpc_max_frame_size)
        rpc = RpcServer(rpc_config, ssl_context=rpc_server_context(self.config))
        pool = PeerPool(rpc_config, ssl_context=rpc_client_context(self.config))
        journal = await Journal.open(data_dir / "agent.db")
        worker = Worker(
            name,
            journal,
            clock,
            pool,
            lambda: alive_servers(gossip, name),
            max_concurrent=self.config.max_concurrent_executions,
            executors=self._executor,
        )
        worker.register(rpc)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(gossip.run)
                await nursery.start(
                    rpc.run, HostPort(self.config.bind_addr.host, self.config.rpc_port)
                )
                await nursery.start(pool.run)
                await nursery.start(worker.run)
                nursery.start_soon(self._reload_tags_on_sighup, gossip)
                log.info("agent started", node=name, mode="worker", version=__version__)
                task_status.started()
                await self._wait_for_signal()
                log.info("agent stopping", node=name)
                await gossip.leave()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await journal.close()
        log.info("agent stopped", node=name)

    def _executor(self, name: str) -> Executor:
        return get_executor(name, self.config.output_limit)

    async def _reload_tags_on_sighup(self, gossip: GossipService) -> None:
        """SIGHUP re-reads the config file's tags and gossips them (Dkron reloads on it too)."""
        with trio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                path = self.config.config_path
                if path is None:
                    log.warning("SIGHUP ignored: no config file to reload tags from")
                    continue
                try:
                    tags = reload_tags(path)
                    self.config = attrs.evolve(self.config, tags=tags)
                    gossip.set_tags(node_tags(self.config))
                except (ConfigError, TagsTooLarge) as exc:
                    log.error("tags not reloaded", file=str(path), error=str(exc))
                    continue
                log.info("tags reloaded", file=str(path), tags=tags)

    async def _wait_for_signal(self) -> None:
        """Return on SIGTERM, SIGINT or `request_stop`."""
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with trio.open_nursery() as nursery:

                async def on_signal() -> None:
                    async for _ in signals:
                        break
                    nursery.cancel_scope.cancel()

                nursery.start_soon(on_signal)
                await self._stop_requested.wait()
                nursery.cancel_scope.cancel()


def _serve_reports(rpc: RpcServer, store: ReplicatedStore, runs: RunManager) -> None:
    """A server takes workers' reports (committed through Raft, wherever they land) and the
    output they stream for the executions it ordered."""

    async def on_report(body: bytes) -> bytes:
        executions = dispatch_wire.decode_executions(body)
        await store.put_executions(executions)  # those of jobs deleted meanwhile are dropped
        return b""

    async def on_output(body: bytes) -> None:
        execution_id, chunk = dispatch_wire.decode_output(body)
        runs.feed_output(execution_id, chunk)

    rpc.on_request(dispatch_wire.REPORT, on_report)
    rpc.on_message(dispatch_wire.OUTPUT, on_output)


def _with_advertise(config: AgentConfig) -> AgentConfig:
    """Gossip needs an address others can reach; bound to every interface without
    advertise-addr, this machine's address stands in (Dkron uses its private IP)."""
    if config.advertise_addr is not None:
        return config
    host = advertised_host(config)
    return attrs.evolve(config, advertise_addr=HostPort(host, config.bind_addr.port))


def tune_gc() -> None:
    """Many small, long-lived objects (jobs, executions, records): young-generation
    collections every 700 allocations cost seconds per minute under load; every 50,000
    keeps memory bounded at a fraction of the cost. (Benchmarks call it too.)"""
    gc.set_threshold(50_000, 20, 1_000)


def run_agent(config: AgentConfig) -> None:
    """Entry point of ``dkron-trio agent``."""
    setup_logging(config.log_level, config.log_format)
    tune_gc()
    try:
        trio.run(Agent(config).run)
    except TlsError as exc:
        raise SystemExit(f"dkron-trio agent: {exc}") from None
