"""The replica side of a store: what a replicated log's state machine needs beyond `Store`.

A server's state is the result of applying the committed log in order. `apply_replicated`
applies one batch of committed entries in one transaction together with the index of the
last one, so after a crash the state and its `applied_index` always agree and a restart
replays only the entries after it. `snapshot_image` / `restore_image` move the whole state
between servers (Raft snapshots) as opaque bytes that only the same kind of store reads.
"""

from collections.abc import Callable, Sequence
from typing import Protocol

from dkron_trio.store.base import RaftMember, Store, StoreError
from dkron_trio.store.rules import StoreTx

Mutation = Callable[[StoreTx], object]
"""One committed command as a function over the store's transaction; returns its result."""


class ImageError(StoreError):
    """Bytes that are not a state image this store can restore."""


class ReplicaStore(Store, Protocol):
    async def applied_index(self) -> int:
        """The index of the last applied log entry (0 when nothing was applied)."""
        ...

    async def apply_replicated(self, index: int, mutations: Sequence[Mutation]) -> list[object]:
        """Run ``mutations`` in order and record ``index`` as applied, all in one transaction.

        Returns each mutation's result. If any mutation raises, nothing of the batch is
        kept and the exception propagates: a mutation that wants a refusal recorded as an
        outcome returns it instead of raising. ``index`` must exceed `applied_index`."""
        ...

    async def raft_members(self) -> list[RaftMember]: ...

    async def snapshot_image(self) -> tuple[int, bytes]:
        """A consistent copy of the whole state and the applied index it reflects."""
        ...

    async def restore_image(self, image: bytes) -> int:
        """Replace the whole state with ``image`` (from `snapshot_image` of the same kind of
        store), or with the empty state when ``image`` is empty; returns its applied index.
        Raises ImageError, leaving the state unchanged, if the bytes are not such an image."""
        ...


def check_index(applied: int, index: int) -> None:
    if index <= applied:
        raise StoreError(f"log index {index} is not after the applied index {applied}")
