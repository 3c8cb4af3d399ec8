"""A job's stored status is `run_status` of its stored executions after every outcome,
whatever order runs, attempts and outcomes arrive in (the rules skip reading the latest
run back when a first outcome agrees with the status: this checks that shortcut)."""

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from dkron_trio.execution import ExecutionStatus, run_status
from dkron_trio.store.base import ExecutionQuery
from dkron_trio.store.memory import MemoryStore

from .helpers import execution, job

FINISHED = [s for s in ExecutionStatus if s.finished]

outcomes = st.lists(
    st.tuples(st.integers(1, 4), st.integers(1, 3), st.sampled_from(FINISHED)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(outcomes)
def test_the_job_status_is_the_latest_runs_status(
    runs: list[tuple[int, int, ExecutionStatus]],
) -> None:
    async def main() -> None:
        store = MemoryStore()
        await store.set_job(job("a", retention_count=1000))
        for n, (group, attempt, status) in enumerate(runs):
            await store.put_execution(execution("a", n, status, group=group, attempt=attempt))
            stored = await store.list_executions("a", ExecutionQuery(limit=1000))
            assert (await store.get_job("a")).status is run_status(stored)

    trio.run(main)
