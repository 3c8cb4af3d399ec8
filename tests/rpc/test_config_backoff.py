"""RpcConfig validation and the reconnect backoff's schedule (pure, no event loop)."""

from __future__ import annotations

import random
from typing import Any

import attrs
import pytest

from dkron_trio.rpc.backoff import Backoff
from dkron_trio.rpc.config import Overflow, RpcConfig, RpcConfigError


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"max_frame_size": 0}, "max_frame_size"),
        ({"max_frame_size": 1 << 32}, "max_frame_size"),
        ({"queue_size": True}, "queue_size"),
        ({"write_batch_bytes": -1}, "write_batch_bytes"),
        ({"max_concurrent_requests": 0}, "max_concurrent_requests"),
        ({"call_timeout": 0}, "call_timeout"),
        ({"connect_timeout": -1.0}, "connect_timeout"),
        ({"backoff_initial": 0}, "backoff_initial"),
        ({"backoff_max": 0.01}, "backoff_max"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier"),
        ({"backoff_jitter": 1.0}, "backoff_jitter"),
        ({"overflow": "block"}, "overflow"),
    ],
)
def test_bad_settings_are_named(changes: dict[str, Any], name: str) -> None:
    with pytest.raises(RpcConfigError, match=name):
        attrs.evolve(RpcConfig(), **changes)


def test_defaults_are_valid() -> None:
    config = RpcConfig()
    assert config.max_frame_size == 16 << 20
    assert config.overflow is Overflow.DROP_OLDEST


def test_backoff_grows_to_the_cap_with_bounded_jitter_and_resets() -> None:
    config = RpcConfig(
        backoff_initial=0.1, backoff_max=1.0, backoff_multiplier=2.0, backoff_jitter=0.25
    )
    backoff = Backoff(config, random.Random(7))
    bases = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    for base in bases:
        delay = backoff.next_delay()
        assert base * 0.75 <= delay <= base
    backoff.reset()
    assert 0.075 <= backoff.next_delay() <= 0.1


def test_backoff_is_reproducible_from_the_seed() -> None:
    a = Backoff(RpcConfig(), random.Random(3))
    b = Backoff(RpcConfig(), random.Random(3))
    assert [a.next_delay() for _ in range(10)] == [b.next_delay() for _ in range(10)]
