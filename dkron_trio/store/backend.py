"""The narrow interface an external backend (etcd, Redis, ZooKeeper, DynamoDB) implements.

A server with an external backend keeps no Raft log of its own: the backend holds an ordered
log of the same commands Raft would commit (`dkron_trio.commands`), under one prefix, table
or key space, appended with the backend's transactions. Every server tails that log into its
local replica through the same state machine (`dkron_trio.fsm`), so the jobs, executions and
their rules are identical whichever backend is chosen. Leadership is a lease in the backend;
its fence (a number that grows with every new holder) guards the leader's own writes
(plans, cursors): an append made with a stale fence is refused by the backend itself, in
the same transaction, so a deposed leader can never commit a plan.
"""

from typing import Protocol

import attrs


class BackendError(Exception):
    """The backend could not be reached or answered unexpectedly (outcome may be unknown)."""


class Fenced(BackendError):
    """An append made under a lease that is no longer the current one; nothing was written."""


@attrs.frozen
class Lease:
    """A leadership: who holds it and its fence (strictly greater than every earlier one)."""

    holder: str
    fence: int


@attrs.frozen
class Entry:
    index: int
    data: bytes


class LogDriver(Protocol):
    """An ordered, durable log plus a leadership lease in one external store.

    Indices are dense (1, 2, 3, ...) and an entry becomes visible only after every entry
    before it, so a reader that has applied index n never misses n + 1.
    """

    async def append(self, data: bytes, *, fence: Lease | None = None) -> int:
        """Append one entry and return its index. With ``fence``, only while that lease is
        still the current one, checked in the same transaction; otherwise raise Fenced."""
        ...

    async def entries(self, after: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries with index > ``after``, in order (none past the end).
        Raises BackendError when ``after`` is below the first entry kept (compacted)."""
        ...

    async def wait_entries(self, after: int, max_wait: float) -> None:
        """Return once an entry with index > ``after`` may exist, or after ``max_wait``
        seconds (a watch where the backend has one, else a short poll)."""
        ...

    async def save_snapshot(self, index: int, image: bytes) -> None:
        """Keep ``image`` as the state at ``index`` and drop the entries up to it."""
        ...

    async def load_snapshot(self) -> tuple[int, bytes] | None:
        """The latest snapshot saved, or None."""
        ...

    async def campaign(self, holder: str, ttl: float) -> Lease:
        """Block until ``holder`` holds the lease (expiring ``ttl`` seconds after its last
        renewal unless renewed) and return it."""
        ...

    async def renew(self, lease: Lease, ttl: float) -> bool:
        """Extend the lease; False when it is no longer held (expired or taken)."""
        ...

    async def resign(self, lease: Lease) -> None:
        """Give the lease up now (leave, shutdown) so another server need not wait ``ttl``."""
        ...

    async def leader(self) -> Lease | None:
        """The current lease, if any."""
        ...

    async def aclose(self) -> None: ...
