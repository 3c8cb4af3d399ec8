"""Gossip tuning: memberlist's LAN defaults and Serf's reconnect timeout, in ticks.

One tick is `TICK_MS` (100 ms) of the shell's clock, so the 1 s probe interval is 10 ticks.
Every default and every check on a gossip setting lives here.
"""

from __future__ import annotations

import attrs

TICK_MS = 100
"""Length of one core tick in the shell (milliseconds)."""

UDP_BUFFER_SIZE = 1400
"""Largest datagram sent or accepted (memberlist's UDPBufferSize for LANs)."""

SEAL_OVERHEAD = 1 + 12 + 16
"""Bytes encryption adds to a datagram (version byte, AES-GCM nonce and tag); the core always
leaves this room so a packet fits the buffer sealed or not."""

META_MAX_BYTES = 512
"""Largest encoded tag map a member may carry (memberlist's MetaMaxSize)."""


class GossipConfigError(ValueError):
    """An invalid GossipConfig; the message names the field."""


def _ticks(seconds: float) -> int:
    return round(seconds * 1000 / TICK_MS)


@attrs.frozen
class GossipConfig:
    """SWIM and Lifeguard parameters (memberlist `DefaultLANConfig`), times in ticks."""

    probe_interval_ticks: int = _ticks(1.0)
    """How often a member probes another; scaled by (awareness + 1) when unhealthy."""
    probe_timeout_ticks: int = _ticks(0.5)
    """Wait for a direct ack before asking others to probe indirectly (also scaled)."""
    indirect_checks: int = 3
    """Members asked to probe indirectly after a missed direct ack."""
    suspicion_mult: int = 4
    """Suspicion timeout floor = suspicion_mult * max(1, log10(n)) * probe interval."""
    suspicion_max_timeout_mult: int = 6
    """Suspicion timeout ceiling = this times the floor (Lifeguard: shortened by confirmations)."""
    awareness_max_multiplier: int = 8
    """Local health score ranges over [0, this); the probe timings scale by score + 1."""
    gossip_interval_ticks: int = _ticks(0.2)
    gossip_nodes: int = 3
    """Random members that get piggybacked news every gossip interval."""
    gossip_to_the_dead_ticks: int = _ticks(30.0)
    """Dead members still get gossip this long, so they learn of it and refute."""
    retransmit_mult: int = 6
    """A broadcast is sent retransmit_mult * ceil(log10(n + 1)) times. memberlist uses 4, which
    leaves each member missing a given piece of news with probability about e^-(limit * (1 -
    loss)): at 50 members and 10% loss, 1 in 1300; in simulation that let 2 of 100 runs end with
    a member declaring a refuted (healthy) member dead. 6 makes it about 1 in 50,000."""
    push_pull_interval_ticks: int = _ticks(30.0)
    """Full-state exchange with one random member (scaled up beyond 32 members)."""
    join_retry_ticks: int = _ticks(1.0)
    """Seeds are contacted again this often until one answers."""
    reconnect_interval_ticks: int = _ticks(30.0)
    """A random failed member is offered a full-state exchange this often (Serf's reconnect)."""
    reap_interval_ticks: int = _ticks(15.0)
    """How often failed and left members are checked for reaping (Serf's reap interval)."""
    reconnect_timeout_ticks: int = _ticks(24 * 3600.0)
    """Failed and left members are forgotten (reaped) after this long (serf-reconnect-timeout)."""
    udp_buffer_size: int = UDP_BUFFER_SIZE
    """Largest datagram sent or accepted; raise only if every member's path allows it."""

    def __attrs_post_init__(self) -> None:
        for field in attrs.fields(GossipConfig):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise GossipConfigError(f"{field.name}: must be an integer, got {value!r}")
            if value <= 0:
                raise GossipConfigError(f"{field.name}: must be positive, got {value}")
        if self.probe_timeout_ticks >= self.probe_interval_ticks:
            raise GossipConfigError(
                "probe_timeout_ticks: must be less than probe_interval_ticks "
                f"({self.probe_timeout_ticks} >= {self.probe_interval_ticks})"
            )
        if self.suspicion_max_timeout_mult < 1:
            raise GossipConfigError("suspicion_max_timeout_mult: must be at least 1")
        if not 2 * META_MAX_BYTES <= self.udp_buffer_size <= 65000:
            raise GossipConfigError(
                f"udp_buffer_size: must be in [{2 * META_MAX_BYTES}, 65000], "
                f"got {self.udp_buffer_size}"
            )
