"""RPC settings: defaults and validation in one place."""

from __future__ import annotations

import enum

import attrs

DEFAULT_MAX_FRAME_SIZE = 16 << 20
"""Largest frame payload accepted or sent, 16 MiB: above Raft's default message size cap."""


class Overflow(enum.Enum):
    """What a peer's sender does with a one-way frame when its queue is full.

    DROP_OLDEST suits Raft (it retransmits, and the newest message carries the newest
    state); BLOCK suits streams that must not lose frames (output, dispatch).
    """

    DROP_OLDEST = "drop_oldest"
    BLOCK = "block"


class RpcConfigError(ValueError):
    """An RPC setting out of range; the message names the setting."""


@attrs.frozen
class RpcConfig:
    """Frame limit, queue, timeouts (seconds) and reconnect backoff of the RPC layer.

    Backoff after a failed or broken connection: `backoff_initial`, multiplied by
    `backoff_multiplier` each further failure up to `backoff_max`; each delay is reduced by
    a random fraction of at most `backoff_jitter` so that peers do not reconnect in step.
    """

    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    queue_size: int = 1024
    overflow: Overflow = Overflow.DROP_OLDEST
    write_batch_bytes: int = 256 << 10
    max_concurrent_requests: int = 256
    call_timeout: float = 10.0
    connect_timeout: float = 5.0
    handshake_timeout: float = 5.0
    backoff_initial: float = 0.05
    backoff_max: float = 5.0
    backoff_multiplier: float = 2.0
    backoff_jitter: float = 0.5

    def __attrs_post_init__(self) -> None:
        for name in (
            "max_frame_size",
            "queue_size",
            "write_batch_bytes",
            "max_concurrent_requests",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RpcConfigError(f"{name}: must be a positive integer, got {value!r}")
        if self.max_frame_size > (1 << 32) - 1:
            raise RpcConfigError("max_frame_size: must fit the 4-byte length prefix")
        for name in ("call_timeout", "connect_timeout", "handshake_timeout", "backoff_initial"):
            if not getattr(self, name) > 0:
                raise RpcConfigError(f"{name}: must be positive, got {getattr(self, name)!r}")
        if not self.backoff_max >= self.backoff_initial:
            raise RpcConfigError("backoff_max: must be at least backoff_initial")
        if not self.backoff_multiplier >= 1:
            raise RpcConfigError("backoff_multiplier: must be at least 1")
        if not 0 <= self.backoff_jitter < 1:
            raise RpcConfigError("backoff_jitter: must be in [0, 1)")
        if not isinstance(self.overflow, Overflow):
            raise RpcConfigError(f"overflow: must be an Overflow, got {self.overflow!r}")
