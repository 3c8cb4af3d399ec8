"""What the agent needs from the server side of a cluster, whichever keeps the state: the
embedded `RaftServer` or a `BackendServer` over an external store (etcd, Redis, ...)."""

from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from dkron_trio.cluster.replicated import CommandLog
from dkron_trio.rpc.server import RpcServer


class ClusterServer(Protocol):
    @property
    def rpc(self) -> RpcServer:
        """The RPC listener, for workers' reports and other services' handlers."""
        ...

    @property
    def command_log(self) -> CommandLog: ...

    @property
    def fence(self) -> int:
        """The current leadership's fencing value (Raft's term, a backend lease's fence):
        orders to workers carry it, and workers refuse orders older than one they saw."""
        ...

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None: ...

    async def lead(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` while this server leads, in a cancel scope per leadership."""
        ...

    async def leave(self) -> None:
        """Hand leadership over before shutting down, if this server leads."""
        ...
