"""What a store holds, read through its public API, for comparing stores."""

from dkron_trio.store.base import ExecutionQuery, JobQuery, Store


async def contents(store: Store) -> dict[str, object]:
    """Everything a store holds, through its public reads."""
    page = await store.list_jobs(JobQuery())
    out: dict[str, object] = {"jobs": page.jobs, "tokens": await store.list_tokens()}
    for j in page.jobs:
        out[f"{j.name}/executions"] = await store.list_executions(j.name, ExecutionQuery())
        out[f"{j.name}/missed"] = await store.list_missed(j.name)
        out[f"{j.name}/cursor"] = await store.get_cursor(j.name)
    return out
