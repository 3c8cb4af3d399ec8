"""Which driver serves each of Dkron's `backend` values.

Drivers are named as "module:function" and imported only when chosen, so a server with the
embedded store never imports a backend's client library.
"""

import importlib
from collections.abc import Callable, Sequence
from typing import cast

from dkron_trio.store.backend import LogDriver

EMBEDDED = frozenset({"", "raft", "boltdb"})
"""Dkron's values meaning the embedded store (Raft + SQLite here)."""

BACKENDS: dict[str, str] = {
    "etcd": "dkron_trio.backends.etcd:open_driver",
    "etcdv3": "dkron_trio.backends.etcd:open_driver",
    "redis": "dkron_trio.backends.redis:open_driver",
    "zk": "dkron_trio.backends.zookeeper:open_driver",
    "zookeeper": "dkron_trio.backends.zookeeper:open_driver",
    "dynamodb": "dkron_trio.backends.dynamodb:open_driver",
}
"""External backends by Dkron's `backend` value."""

ABSENT: dict[str, str] = {
    "consul": (
        "no Consul server can be installed here (not in Debian, npm or PyPI), so the "
        "consul backend is not offered; use etcd, redis, zk or dynamodb"
    ),
}
"""Backend values Dkron knows that this build refuses, with the reason."""

OpenDriver = Callable[[Sequence[str], str], LogDriver]


class UnknownBackend(ValueError):
    """A `backend` value that names no backend this build offers."""


def backend_error(name: str) -> str | None:
    """Why ``name`` is not a usable `backend` value, or None when it is."""
    if name in EMBEDDED or name in BACKENDS:
        return None
    if name in ABSENT:
        return ABSENT[name]
    known = ", ".join(sorted({"raft", *BACKENDS}))
    return f"unknown backend {name!r}; one of: {known}"


def is_external(name: str) -> bool:
    return name in BACKENDS


def driver_opener(name: str) -> OpenDriver:
    """The `open_driver(machines, namespace)` of backend ``name`` (imported now)."""
    problem = backend_error(name)
    if problem is not None or name not in BACKENDS:
        raise UnknownBackend(problem or f"backend {name!r} is the embedded store")
    module_name, function = BACKENDS[name].split(":")
    module = importlib.import_module(module_name)
    return cast(OpenDriver, getattr(module, function))
