"""Gossip tuning: memberlist's LAN defaults and Serf's reconnect timeout, in ticks.

One tick is `TICK_MS` (100 ms) of the shell's clock, so the 1 s probe interval is 10 ticks.
Every default and every check on a gossip setting lives here.
"""

from __future__ import annotations

import base64
import binascii
import enum
from datetime import timedelta

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


KEY_SIZES = (16, 24, 32)
"""Accepted gossip key sizes in bytes (AES-128/192/256), as Dkron and Serf accept."""


class GossipConfigError(ValueError):
    """An invalid gossip setting; the message names the field, `key` the agent's config key
    when it came from one."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key


class KeyringError(ValueError):
    """A bad key or keyring operation; the message says which."""


def parse_key(text: str) -> bytes:
    """A base64 key of 16, 24 or 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError("key: not valid base64") from None
    if len(key) not in KEY_SIZES:
        raise KeyringError(f"key: must decode to 16, 24 or 32 bytes, got {len(key)}")
    return key


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


class GossipProfile(enum.Enum):
    """memberlist's timing profiles (the agent's `profile` key)."""

    LAN = "lan"
    WAN = "wan"
    LOCAL = "local"


_PROFILES: dict[GossipProfile, dict[str, int]] = {
    GossipProfile.LAN: {},
    # memberlist DefaultWANConfig: slower probes and gossip, longer suspicion.
    GossipProfile.WAN: {
        "suspicion_mult": 6,
        "push_pull_interval_ticks": _ticks(60.0),
        "probe_timeout_ticks": _ticks(3.0),
        "probe_interval_ticks": _ticks(5.0),
        "gossip_nodes": 4,
        "gossip_interval_ticks": _ticks(0.5),
        "gossip_to_the_dead_ticks": _ticks(60.0),
    },
    # memberlist DefaultLocalConfig: loopback, no loss to speak of.
    GossipProfile.LOCAL: {
        "indirect_checks": 1,
        "retransmit_mult": 2,
        "suspicion_mult": 3,
        "push_pull_interval_ticks": _ticks(15.0),
        "probe_timeout_ticks": _ticks(0.2),
        "gossip_interval_ticks": _ticks(0.1),
        "gossip_to_the_dead_ticks": _ticks(15.0),
    },
}

AGENT_RETRY_INTERVAL = timedelta(seconds=1)
"""Default `retry-interval` between join attempts. Dkron's is 30 s between TCP join attempts;
here an attempt is one datagram per seed, so retrying every second costs little and members
started together form a cluster at once."""
AGENT_RECONNECT_TIMEOUT = timedelta(hours=24)
"""Default `serf-reconnect-timeout` (Serf's and Dkron's)."""


def agent_gossip_config(
    profile: GossipProfile,
    *,
    reconnect_timeout: timedelta = AGENT_RECONNECT_TIMEOUT,
    retry_interval: timedelta = AGENT_RETRY_INTERVAL,
    retry_max: int = 0,
    encrypt: str = "",
    max_datagram: int = UDP_BUFFER_SIZE,
) -> GossipConfig:
    """The GossipConfig an agent runs with, checking the agent's gossip keys; a bad value
    raises GossipConfigError naming the key."""
    if retry_max < 0:
        raise GossipConfigError("must not be negative (0 = retry forever)", "retry-max")
    if encrypt:
        try:
            parse_key(encrypt)
        except KeyringError as exc:
            raise GossipConfigError(str(exc).replace("key: ", ""), "encrypt") from None
    limits = (("serf-reconnect-timeout", reconnect_timeout), ("retry-interval", retry_interval))
    for key, value in limits:
        if value < timedelta(milliseconds=TICK_MS):
            raise GossipConfigError(f"must be at least {TICK_MS}ms", key)
    if not 2 * META_MAX_BYTES <= max_datagram <= 65000:
        raise GossipConfigError(
            f"must be in [{2 * META_MAX_BYTES}, 65000], got {max_datagram}", "gossip-max-datagram"
        )
    return GossipConfig(
        **_PROFILES[profile],
        udp_buffer_size=max_datagram,
        reconnect_timeout_ticks=_ticks(reconnect_timeout.total_seconds()),
        join_retry_ticks=_ticks(retry_interval.total_seconds()),
    )
