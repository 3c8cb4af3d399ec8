"""What the HTTP API needs from the agent, and the cluster as the API shows it.

`ApiDeps` is everything a handler may touch: the store, the run manager, the scheduler, the
clock and the cluster view. `ClusterView` is the narrow interface for membership and
leadership; `SingleNodeCluster` is the one-server implementation used until gossip and Raft
provide the real one.
"""

from collections.abc import Awaitable, Callable, Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from dkron_trio.clock import WallClock
from dkron_trio.config import DEFAULT_BODY_LIMIT, DEFAULT_MAX_JOBS_PER_REQUEST
from dkron_trio.gossip.keyring_query import KeyringReport
from dkron_trio.gossip.messages import KeyOp
from dkron_trio.runs import RunManager
from dkron_trio.scheduler import Scheduler
from dkron_trio.store.base import Store

if TYPE_CHECKING:
    from dkron_trio.metrics import Metrics


class MemberStatus(Enum):
    """Serf's member status numbers (Dkron reports them as ``Status``)."""

    NONE = 0
    ALIVE = 1
    LEAVING = 2
    LEFT = 3
    FAILED = 4


@attrs.frozen
class Member:
    """A cluster member as Dkron's API shows it (Serf's member object)."""

    name: str
    addr: str
    port: int
    tags: Mapping[str, str]
    status: MemberStatus = MemberStatus.ALIVE

    def to_json(self) -> dict[str, Any]:
        """Dkron's shape: Serf's fields plus ``id`` and ``statusText`` for list views.

        The protocol numbers are memberlist's (min 1, max 5, current 2; delegate 2/5/4).
        Dkron's ``id`` is a random UUID per call; ours is the node name, unique and stable.
        """
        return {
            "Name": self.name,
            "Addr": self.addr,
            "Port": self.port,
            "Tags": dict(self.tags),
            "Status": self.status.value,
            "ProtocolMin": 1,
            "ProtocolMax": 5,
            "ProtocolCur": 2,
            "DelegateMin": 2,
            "DelegateMax": 5,
            "DelegateCur": 4,
            "id": self.name,
            "statusText": self.status.name.lower(),
        }


class ClusterView(Protocol):
    """Membership and leadership as seen from this node."""

    def members(self) -> list[Member]: ...

    def leader(self) -> Member | None:
        """The current leader, None while there is none (writes then answer 503)."""
        ...

    def is_leader(self) -> bool: ...

    async def linearize(self) -> None:
        """Return once this node reflects every write acknowledged before the call
        (ClusterUnavailable when it cannot know)."""
        ...


@attrs.frozen
class SingleNodeCluster:
    """A cluster of one server: it is always the leader."""

    member: Member

    def members(self) -> list[Member]:
        return [self.member]

    def leader(self) -> Member | None:
        return self.member

    def is_leader(self) -> bool:
        return True

    async def linearize(self) -> None:
        """Every write is applied here before it is acknowledged."""


class GossipKeyring(Protocol):
    """Cluster-wide gossip keyring operations (`GossipService.keyring`)."""

    async def keyring(self, op: KeyOp, key: bytes) -> KeyringReport:
        """Apply `op` on every live member (`key` empty for LIST). Raises KeyringUnavailable
        without gossip encryption, KeyringError when this node refuses the operation."""
        ...


@attrs.frozen(kw_only=True)
class ApiDeps:
    """The agent's services the HTTP API works with."""

    store: Store
    runs: RunManager
    scheduler: Scheduler
    clock: WallClock
    cluster: ClusterView
    node_name: str
    version: str
    node_tags: Mapping[str, str]
    request_leave: Callable[[], None]
    """Start this agent's graceful shutdown (``POST /v1/leave``)."""
    state_image: Callable[[], Awaitable[tuple[int, bytes]]] | None = None
    """A consistent image of the local state and its applied index (``GET /v1/backup``);
    None on a node that keeps no state."""
    body_limit: int = DEFAULT_BODY_LIMIT
    """Largest accepted request body in bytes; larger ones get 413."""
    max_jobs_per_request: int = DEFAULT_MAX_JOBS_PER_REQUEST
    """Most jobs one request may carry (POST /v1/restore); more get 413."""
    rate_limit: float = 0.0
    """Requests per second each client address may make (0: no limit); more get 429."""
    rate_burst: int = 0
    """Requests a client may make at once before `rate_limit` applies (0: twice the rate)."""
    acl_enabled: bool = False
    """Every operation needs a token granting its access (`dkron_trio.http.auth`)."""
    metrics: "Metrics | None" = None
    """Prometheus metrics (``enable-prometheus``); None: ``/metrics`` answers 404 and
    requests are not counted."""
    gossip: GossipKeyring | None = None
    """Gossip keyring operations; None when this agent runs without gossip (keyring routes
    then answer 501)."""
