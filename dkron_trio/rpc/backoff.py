"""Reconnect delays: exponential with jitter, drawn from an injected random.Random."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from dkron_trio.rpc.config import RpcConfig

if TYPE_CHECKING:
    import random


@attrs.define
class Backoff:
    """`next_delay()` after each failure; `reset()` once a connection is up again."""

    _config: RpcConfig
    _rng: random.Random
    _base: float = attrs.field(default=0.0, init=False)

    def next_delay(self) -> float:
        cfg = self._config
        if self._base == 0.0:
            self._base = cfg.backoff_initial
        else:
            self._base = min(self._base * cfg.backoff_multiplier, cfg.backoff_max)
        return self._base * (1.0 - cfg.backoff_jitter * self._rng.random())

    def reset(self) -> None:
        self._base = 0.0
