"""The store's contract suite (tests/store/), run on a `ReplicatedStore` whose command log
is each backend's: writes append to the backend and come back through the local replica.

Every test of the suite that takes a plain `Store` is collected here; the server leads
(plans and cursors are the leader's writes), so the whole suite applies.
"""

import inspect
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from dkron_trio.cluster.replicated import ReplicatedStore
from dkron_trio.execution import ExecutionStatus, MissedTick, MissReason
from dkron_trio.store.base import PlanRecord, Store
from tests.backends.conftest import BackendUnderTest
from tests.backends.harness import running_server, wait_leader
from tests.store import (
    test_contract_executions,
    test_contract_jobs,
    test_contract_plan,
    test_contract_tokens,
)
from tests.store.helpers import T0, execution, job

LOCAL_ONLY = {
    "test_record_plans_stores_missed_running_and_cursor",
    "test_a_plan_for_a_missing_job_is_refused_alone",
}
"""They expect a local store's plan fence (None); a replicated store's is the log index, as
the replicated versions below check."""


def _store_tests() -> dict[str, object]:
    found: dict[str, object] = {}
    for module in (
        test_contract_jobs,
        test_contract_executions,
        test_contract_plan,
        test_contract_tokens,
    ):
        for name, fn in vars(module).items():
            if not name.startswith("test_") or not callable(fn) or name in LOCAL_ONLY:
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


async def test_replicated_plans_are_fenced_by_their_log_index(store: ReplicatedStore) -> None:
    await store.set_job(job("a"))
    missed = [MissedTick("a", T0 + timedelta(seconds=10), MissReason.MISFIRE, T0)]
    running = [execution("a", 20, ExecutionStatus.RUNNING)]
    plans = [
        PlanRecord("a", T0 + timedelta(seconds=20), missed, running),
        PlanRecord("gone", T0, [], [execution("gone", 1, ExecutionStatus.RUNNING)]),
    ]
    recorded = await store.record_plans(plans)
    assert recorded.refused == frozenset({"gone"})
    assert isinstance(recorded.fence, int) and recorded.fence > 1
    assert await store.get_cursor("a") == T0 + timedelta(seconds=20)
    assert [m.scheduled_at for m in await store.list_missed("a")] == [missed[0].scheduled_at]
    assert [(e.id, e.fence) for e in await store.running_executions()] == [
        (running[0].id, recorded.fence)
    ]
