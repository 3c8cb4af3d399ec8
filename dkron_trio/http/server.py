"""Serving the API with hypercorn's Trio worker inside the agent's nursery.

`HttpServer.run` binds, reports the bound addresses through ``task_status.started`` and
serves until `shutdown` is called; shutdown goes through hypercorn's ``shutdown_trigger``,
so in-flight requests finish (within a grace period) and the app's shutdown hooks run.
"""

import logging
from collections.abc import Awaitable, Callable, Mapping

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

from dkron_trio.clock import WallClock
from dkron_trio.config import AgentConfig, HostPort
from dkron_trio.http.app import ApiApp, create_app
from dkron_trio.http.context import (
    ApiDeps,
    ClusterView,
    GossipKeyring,
    Member,
    SingleNodeCluster,
)
from dkron_trio.logs import get_logger
from dkron_trio.metrics import Metrics
from dkron_trio.runs import RunManager
from dkron_trio.scheduler import Scheduler
from dkron_trio.store.base import Store
from dkron_trio.tls import HttpTls, http_tls

log = get_logger(__name__)

GRACEFUL_SECONDS = 5.0
"""How long in-flight requests and WebSocket followers get once shutdown starts."""


@attrs.frozen
class ShieldedSend:
    """ASGI wrapper that shields the app's sends from the app's own cancellation.

    Quart-Trio cancels a request's nursery as soon as the response is sent, while hypercorn,
    inside that very send, starts the connection's keep-alive idle task. Cancelled there,
    the idle task dies: idle keep-alive connections then never time out and hold a graceful
    shutdown until its deadline. Shielding the send lets hypercorn finish its bookkeeping
    (its socket writes are shielded already, so nothing new can block).
    """

    app: ASGIFramework

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        async def shielded(message: ASGISendEvent) -> None:
            with trio.CancelScope(shield=True):
                await send(message)

        await self.app(scope, receive, shielded)


def bind_addresses(addr: HostPort) -> list[str]:
    """Hypercorn bind strings; an empty host means every IPv4 interface (like Go's ``:port``)."""
    host = addr.host or "0.0.0.0"
    return [f"[{host}]:{addr.port}" if ":" in host else f"{host}:{addr.port}"]


@attrs.define
class HttpServer:
    """The API server; ``await nursery.start(server.run)`` returns the bound URLs."""

    _app: ApiApp
    _addr: HostPort
    _stopped: trio.Event = attrs.field(factory=trio.Event)
    bound: list[str] = attrs.field(factory=list)
    _tls: HttpTls | None = None
    """Serve HTTPS with this certificate (`cert-file`/`key-file`); None serves HTTP."""

    @classmethod
    def for_agent(
        cls,
        config: AgentConfig,
        *,
        store: Store,
        runs: RunManager,
        scheduler: Scheduler,
        clock: WallClock,
        version: str,
        tags: Mapping[str, str],
        request_leave: Callable[[], None],
        cluster: ClusterView | None = None,
        gossip: GossipKeyring | None = None,
        state_image: Callable[[], Awaitable[tuple[int, bytes]]] | None = None,
        metrics: Metrics | None = None,
    ) -> "HttpServer":
        """The agent's API server; without a cluster view this node is the whole cluster."""
        if cluster is None:
            where = config.advertise_addr or config.bind_addr
            cluster = SingleNodeCluster(
                Member(config.node_name, where.host, where.port, dict(tags))
            )
        deps = ApiDeps(
            store=store,
            runs=runs,
            scheduler=scheduler,
            clock=clock,
            cluster=cluster,
            node_name=config.node_name,
            version=version,
            node_tags=dict(tags),
            request_leave=request_leave,
            body_limit=config.body_limit,
            max_jobs_per_request=config.max_jobs_per_request,
            rate_limit=config.http_rate_limit,
            rate_burst=config.http_rate_burst,
            acl_enabled=config.acl_enabled,
            gossip=gossip,
            state_image=state_image,
            metrics=metrics,
        )
        return cls(create_app(deps), config.http_addr, tls=http_tls(config))

    async def run(
        self, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        config = HypercornConfig()
        config.bind = bind_addresses(self._addr)
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.graceful_timeout = GRACEFUL_SECONDS
        if self._tls is not None:
            config.certfile = self._tls.cert_file
            config.keyfile = self._tls.key_file
        stopping = self._app.state.stopping

        async def started(*, task_status: trio.TaskStatus[list[str]]) -> None:
            await serve(
                ShieldedSend(self._app),
                config,
                shutdown_trigger=stopping.wait,
                task_status=task_status,
            )

        try:
            async with trio.open_nursery() as nursery:
                self.bound = await nursery.start(started)
                log.info("http listening", addresses=" ".join(self.bound))
                task_status.started(self.bound)
        finally:
            self._stopped.set()
        log.info("http stopped")

    async def shutdown(self) -> None:
        """Stop accepting, let in-flight requests finish, run shutdown hooks; wait for it."""
        self._app.state.stopping.set()
        await self._stopped.wait()
