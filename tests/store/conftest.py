"""One fixture, two stores: the contract suite runs against MemoryStore and SqliteStore."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dkron_trio.store.memory import MemoryStore
from dkron_trio.store.replica import ReplicaStore
from dkron_trio.store.sqlite import open_sqlite_store


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReplicaStore]:
    if request.param == "memory":
        yield MemoryStore()
    else:
        async with open_sqlite_store(tmp_path / "state.db") as sqlite_store:
            yield sqlite_store
