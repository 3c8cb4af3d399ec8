"""The cluster's settings for one server, derived from the agent's configuration."""

import hashlib
import socket
from pathlib import Path

import attrs

from dkron_trio.config import AgentConfig, HostPort

DEFAULT_APPLY_TIMEOUT = 30.0
"""How long a write waits for a leader and its commit (Dkron's raft.Apply timeout)."""
DEFAULT_FORWARD_TIMEOUT = 5.0
"""How long one forwarded write waits for the leader's answer before trying again."""
DEFAULT_ELECTION_TICKS = 10
"""A server's base election timeout in 100 ms ticks (times `raft-multiplier`): a follower
waits 1-2 s without a heartbeat (one every 100 ms) before it campaigns, Dkron's timing
(hashicorp/raft's 1 s). A dead leader whose process is gone is replaced sooner (the
transport's down report); a live one survives the pauses of an overloaded Python process
(a 370 ms collection inside a 600 ms loop step was seen at 10,000 jobs, where 0.6 s cost
the cluster its leader every few seconds). Pre-vote and check-quorum keep a slow but live
leader in place. Raise `raft-multiplier` on machines with longer pauses."""
DEFAULT_SNAPSHOT_THRESHOLD = 8192
"""Entries applied since the last snapshot before the next one is taken (hashicorp/raft's)."""


class ClusterConfigError(ValueError):
    """An invalid cluster setting; the message names it."""


def node_id_for(name: str) -> int:
    """The Raft id of a node name: stable across restarts, never 0 (Raft's "nobody")."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 63) - 1) or 1


def advertised_host(config: AgentConfig) -> str:
    """Where other servers reach this one: advertise-addr, else bind-addr's host, else this
    machine's address by its host name."""
    if config.advertise_addr is not None and config.advertise_addr.host:
        return config.advertise_addr.host
    host = config.bind_addr.host
    if host and host not in ("0.0.0.0", "::"):
        return host
    return socket.gethostbyname(socket.gethostname())


@attrs.frozen(kw_only=True)
class ClusterConfig:
    node_name: str
    data_dir: Path
    rpc_bind: HostPort
    """Where the RPC listener binds (bind-addr's host, rpc-port)."""
    advertise: HostPort
    """The RPC address others dial (advertise host, advertise-rpc-port or rpc-port)."""
    bootstrap_expect: int = 0
    joining: bool = False
    """Told to join a cluster (join addresses given): never bootstrap alone. The servers to
    greet and join are found through gossip."""
    raft_multiplier: int = 1
    apply_timeout: float = DEFAULT_APPLY_TIMEOUT
    forward_timeout: float = DEFAULT_FORWARD_TIMEOUT
    snapshot_threshold: int = DEFAULT_SNAPSHOT_THRESHOLD

    def __attrs_post_init__(self) -> None:
        if not self.node_name:
            raise ClusterConfigError("node-name: must not be empty")
        if self.bootstrap_expect < 0:
            raise ClusterConfigError("bootstrap-expect: must be >= 0")
        for name in ("apply_timeout", "forward_timeout"):
            if not getattr(self, name) > 0:
                raise ClusterConfigError(f"{name}: must be positive")
        if self.snapshot_threshold < 1:
            raise ClusterConfigError("snapshot_threshold: must be >= 1")

    @property
    def node_id(self) -> int:
        return node_id_for(self.node_name)

    @property
    def raft_path(self) -> Path:
        return self.data_dir / "raft.db"

    @classmethod
    def from_agent(cls, config: AgentConfig) -> "ClusterConfig":
        port = config.advertise_rpc_port or config.rpc_port
        return cls(
            node_name=config.node_name,
            data_dir=Path(config.data_dir),
            rpc_bind=HostPort(config.bind_addr.host, config.rpc_port),
            advertise=HostPort(advertised_host(config), port),
            bootstrap_expect=config.bootstrap_expect,
            joining=bool(config.join or config.retry_join),
            raft_multiplier=config.raft_multiplier,
            snapshot_threshold=config.raft_snapshot_threshold,
        )
