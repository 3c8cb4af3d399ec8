"""The store's contract suite (tests/store/), run on a `ReplicatedStore` whose command log
is each backend's: writes append to the backend and come back through the local replica.

Every test of the suite that takes a plain `Store` is collected here; the server leads
(plans and cursors are the leader's writes), so the whole suite applies.
"""

import inspect
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dkron_trio.cluster.replicated import ReplicatedStore
from dkron_trio.store.base import Store
from tests.backends.conftest import BackendUnderTest
from tests.backends.harness import running_server, wait_leader
from tests.store import (
    test_contract_executions,
    test_contract_jobs,
    test_contract_plan,
    test_contract_tokens,
)


def _store_tests() -> dict[str, object]:
    found: dict[str, object] = {}
    for module in (
        test_contract_jobs,
        test_contract_executions,
        test_contract_plan,
        test_contract_tokens,
    ):
        for name, fn in vars(module).items():
            if not name.startswith("test_") or not callable(fn):
                continue
            parameter = inspect.signature(fn).parameters.get("store")
            if parameter is not None and parameter.annotation is Store:
                if name in found:
                    raise RuntimeError(f"two contract tests named {name}")
                found[name] = fn
    return found


globals().update(_store_tests())


@pytest.fixture
async def store(backend: BackendUnderTest, tmp_path: Path) -> AsyncIterator[ReplicatedStore]:
    async with running_server(backend, "s1", tmp_path) as (server, local):
        await wait_leader(server)
        yield ReplicatedStore(local, server.command_log)
