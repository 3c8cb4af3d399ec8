"""Store contract, jobs: CRUD, Dkron's upsert rules, parent/child bookkeeping, list queries."""

from datetime import timedelta

import pytest

from dkron_trio.execution import ExecutionStatus
from dkron_trio.job import Concurrency, Job, JobStatus, ValidationError
from dkron_trio.store import rules
from dkron_trio.store.base import (
    DependencyCycle,
    ExecutionQuery,
    InvalidQuery,
    JobHasChildren,
    JobNotFound,
    JobQuery,
    ParentNotFound,
    SortOrder,
    Store,
)

from .helpers import NOTIFY, T0, execution, job


async def names(store: Store, q: JobQuery) -> list[str]:
    return [j.name for j in (await store.list_jobs(q)).jobs]


# --- CRUD -----------------------------------------------------------------------------------


async def test_set_then_get_returns_the_same_job(store: Store) -> None:
    original = job(
        "backup",
        displayname="Nightly backup",
        timezone="Europe/Berlin",
        tags={"role": "db:1"},
        metadata={"team": "ops"},
        processors={"files": {"forward": "true"}},
        concurrency=Concurrency.FORBID,
        starts_at=T0 + timedelta(days=1),
        timeout=timedelta(minutes=5),
        retention_age=timedelta(days=7),
        next=T0 + timedelta(days=1, microseconds=5),
        notify=NOTIFY,
    )
    stored = await store.set_job(original)
    assert stored == original
    assert await store.get_job("backup") == original


async def test_get_unknown_job_raises(store: Store) -> None:
    with pytest.raises(JobNotFound) as info:
        await store.get_job("nope")
    assert info.value.name == "nope"


async def test_delete_returns_the_job_and_removes_it(store: Store) -> None:
    await store.set_job(job("a"))
    deleted = await store.delete_job("a")
    assert deleted.name == "a"
    with pytest.raises(JobNotFound):
        await store.get_job("a")
    with pytest.raises(JobNotFound):
        await store.delete_job("a")


async def test_invalid_job_is_refused_and_nothing_stored(store: Store) -> None:
    with pytest.raises(ValidationError) as info:
        await store.set_job(job("Bad"))
    assert info.value.field == "name"
    with pytest.raises(ValidationError):
        await store.set_job(job("good", schedule="not a schedule"))
    assert (await store.list_jobs(JobQuery())).total == 0


# --- upsert merge rules ---------------------------------------------------------------------


async def test_update_replaces_plain_fields(store: Store) -> None:
    await store.set_job(job("a", schedule="@every 10s", disabled=False, owner="x"))
    stored = await store.set_job(job("a", schedule="@every 20s", disabled=True, owner="y"))
    assert (stored.schedule, stored.disabled, stored.owner) == ("@every 20s", True, "y")
    assert await store.get_job("a") == stored


async def test_update_keeps_counters_at_their_maximum(store: Store) -> None:
    late = T0 + timedelta(hours=2)
    await store.set_job(job("a", success_count=5, error_count=1, last_success=late))
    stored = await store.set_job(
        job("a", success_count=2, error_count=3, last_success=T0, last_error=T0)
    )
    assert (stored.success_count, stored.error_count) == (5, 3)
    assert stored.last_success == late
    assert stored.last_error == T0


async def test_update_keeps_a_stored_status(store: Store) -> None:
    await store.set_job(job("a", status=JobStatus.FAILED))
    stored = await store.set_job(job("a", status=JobStatus.SUCCESS))
    assert stored.status is JobStatus.FAILED
    await store.set_job(job("b"))
    stored = await store.set_job(job("b", status=JobStatus.SUCCESS))
    assert stored.status is JobStatus.SUCCESS


async def test_update_keeps_created_at_and_the_every_phase(store: Store) -> None:
    body = {"name": "a", "schedule": "@every 10s", "executor": "shell"}
    body["executor_config"] = {"command": "true"}  # type: ignore[assignment]
    first = await store.set_job(Job.from_json(body, now=T0))
    later = T0 + timedelta(seconds=33)
    resubmitted = Job.from_json({**body, "owner": "me"}, now=later)
    assert resubmitted.next == later + timedelta(seconds=10)
    stored = await store.set_job(resubmitted)
    assert stored.created_at == first.created_at == T0
    assert stored.next == T0 + timedelta(seconds=40)
    assert stored.owner == "me"


async def test_update_cannot_overwrite_dependent_jobs(store: Store) -> None:
    await store.set_job(job("parent"))
    await store.set_job(job("child", parent_job="parent"))
    stored = await store.set_job(job("parent", dependent_jobs=("bogus",)))
    assert stored.dependent_jobs == ("child",)
    new = await store.set_job(job("fresh", dependent_jobs=("bogus",)))
    assert new.dependent_jobs == ()


async def test_update_keeps_executions_missed_ticks_and_cursor(store: Store) -> None:
    await store.set_job(job("a"))
    await store.put_execution(execution("a", 1))
    await store.set_cursor("a", T0)
    await store.set_job(job("a", owner="new"))
    assert len(await store.list_executions("a", ExecutionQuery())) == 1
    assert await store.get_cursor("a") == T0


# --- parents and children -------------------------------------------------------------------


async def test_parent_must_exist(store: Store) -> None:
    with pytest.raises(ParentNotFound) as info:
        await store.set_job(job("child", parent_job="ghost"))
    assert info.value.parent == "ghost"
    with pytest.raises(JobNotFound):
        await store.get_job("child")


async def test_children_are_listed_on_the_parent(store: Store) -> None:
    await store.set_job(job("p"))
    await store.set_job(job("zeta", parent_job="p", schedule=""))
    await store.set_job(job("alpha", parent_job="p"))
    assert (await store.get_job("p")).dependent_jobs == ("alpha", "zeta")
    await store.set_job(job("alpha", parent_job="p", owner="again"))
    assert (await store.get_job("p")).dependent_jobs == ("alpha", "zeta")


async def test_moving_a_child_updates_both_parents(store: Store) -> None:
    await store.set_job(job("p1"))
    await store.set_job(job("p2"))
    await store.set_job(job("c", parent_job="p1"))
    await store.set_job(job("c", parent_job="p2"))
    assert (await store.get_job("p1")).dependent_jobs == ()
    assert (await store.get_job("p2")).dependent_jobs == ("c",)
    await store.set_job(job("c"))
    assert (await store.get_job("p2")).dependent_jobs == ()


async def test_parent_with_children_cannot_be_deleted(store: Store) -> None:
    await store.set_job(job("p"))
    await store.set_job(job("c", parent_job="p"))
    with pytest.raises(JobHasChildren) as info:
        await store.delete_job("p")
    assert info.value.children == ("c",)
    await store.delete_job("c")
    assert (await store.get_job("p")).dependent_jobs == ()
    await store.delete_job("p")


async def test_dependency_cycles_are_refused(store: Store) -> None:
    await store.set_job(job("a"))
    await store.set_job(job("b", parent_job="a"))
    await store.set_job(job("c", parent_job="b"))
    with pytest.raises(DependencyCycle):
        await store.set_job(job("a", parent_job="c"))
    assert (await store.get_job("a")).parent_job == ""
    assert (await store.get_job("c")).dependent_jobs == ()


async def test_same_parent_is_a_validation_error(store: Store) -> None:
    with pytest.raises(ValidationError) as info:
        await store.set_job(job("a", parent_job="a"))
    assert info.value.field == "parent_job"


# --- list filters, sorting, paging ----------------------------------------------------------


async def _fill(store: Store) -> None:
    await store.set_job(job("alpha", displayname="First Job", metadata={"env": "prod", "t": "1"}))
    await store.set_job(job("beta", displayname="Second", metadata={"env": "prod"}, disabled=True))
    await store.set_job(job("gamma", metadata={"env": "dev", "t": "1"}, success_count=3))
    await store.set_job(job("delta-job", displayname="Über", status=JobStatus.FAILED))


async def test_default_query_lists_everything_by_name(store: Store) -> None:
    await _fill(store)
    page = await store.list_jobs(JobQuery())
    assert [j.name for j in page.jobs] == ["alpha", "beta", "delta-job", "gamma"]
    assert page.total == 4


async def test_metadata_filter_needs_every_pair(store: Store) -> None:
    await _fill(store)
    assert await names(store, JobQuery(metadata={"env": "prod"})) == ["alpha", "beta"]
    assert await names(store, JobQuery(metadata={"env": "prod", "t": "1"})) == ["alpha"]
    assert await names(store, JobQuery(metadata={"t": "1"})) == ["alpha", "gamma"]
    assert await names(store, JobQuery(metadata={"env": "qa"})) == []


async def test_metadata_filter_follows_updates(store: Store) -> None:
    await _fill(store)
    await store.set_job(job("alpha", metadata={"env": "dev"}))
    assert await names(store, JobQuery(metadata={"env": "prod"})) == ["beta"]
    await store.delete_job("beta")
    assert await names(store, JobQuery(metadata={"env": "prod"})) == []


async def test_tag_filter_needs_every_pair_exactly(store: Store) -> None:
    await store.set_job(job("a", tags={"kind": "worker:1", "zone": "eu"}))
    await store.set_job(job("b", tags={"kind": "worker:1"}))
    await store.set_job(job("c", tags={'we"ird': "x"}))
    await store.set_job(job("d"))
    assert await names(store, JobQuery(tags={"kind": "worker:1"})) == ["a", "b"]
    assert await names(store, JobQuery(tags={"kind": "worker:1", "zone": "eu"})) == ["a"]
    assert await names(store, JobQuery(tags={"kind": "worker"})) == []
    page = await store.list_jobs(JobQuery(tags={"kind": "worker:1"}, start=1, end=2))
    assert ([j.name for j in page.jobs], page.total) == (["b"], 2)


async def test_q_matches_name_or_displayname_ignoring_case(store: Store) -> None:
    await _fill(store)
    assert await names(store, JobQuery(q="job")) == ["alpha", "delta-job"]
    assert await names(store, JobQuery(q="SEC")) == ["beta"]
    assert await names(store, JobQuery(q="über")) == ["delta-job"]
    assert await names(store, JobQuery(q="zzz")) == []


async def test_status_filter(store: Store) -> None:
    await _fill(store)
    assert await names(store, JobQuery(status=JobStatus.FAILED)) == ["delta-job"]
    untriggered = await names(store, JobQuery(status=JobStatus.UNTRIGGERED))
    assert untriggered == ["alpha", "beta", "gamma"]
    assert await names(store, JobQuery(status=JobStatus.SUCCESS)) == []


async def test_disabled_filter(store: Store) -> None:
    await _fill(store)
    assert await names(store, JobQuery(disabled=True)) == ["beta"]
    assert await names(store, JobQuery(disabled=False)) == ["alpha", "delta-job", "gamma"]


async def test_filters_combine(store: Store) -> None:
    await _fill(store)
    q = JobQuery(metadata={"env": "prod"}, disabled=False, q="first")
    assert await names(store, q) == ["alpha"]


async def test_sort_by_counter_and_order(store: Store) -> None:
    await _fill(store)
    q = JobQuery(sort="success_count", order=SortOrder.DESC)
    assert await names(store, q) == ["gamma", "delta-job", "beta", "alpha"]
    q = JobQuery(sort="displayname")
    assert await names(store, q) == ["gamma", "alpha", "beta", "delta-job"]
    assert await names(store, JobQuery(sort="id", order=SortOrder.DESC)) == [
        "gamma",
        "delta-job",
        "beta",
        "alpha",
    ]


async def test_sort_puts_unset_times_first(store: Store) -> None:
    await store.set_job(job("a", last_success=T0 + timedelta(seconds=5)))
    await store.set_job(job("b"))
    await store.set_job(job("c", last_success=T0))
    assert await names(store, JobQuery(sort="last_success")) == ["b", "c", "a"]
    q = JobQuery(sort="last_success", order=SortOrder.DESC)
    assert await names(store, q) == ["a", "c", "b"]


@pytest.mark.parametrize("field", rules.JOB_SORT_FIELDS)
async def test_every_scalar_field_sorts(store: Store, field: str) -> None:
    variants = [
        job("j1", displayname="b", retries=2, timeout=timedelta(seconds=3), owner="z"),
        job("j2", displayname="a", disabled=True, next=T0, status=JobStatus.SUCCESS),
        job(
            "j3",
            concurrency=Concurrency.REPLACE,
            created_at=T0 + timedelta(days=1),
            starts_at=T0,
            misfire_grace=timedelta(0),
            retention_count=5,
        ),
        job("j4", timezone="UTC", error_count=4, retention_age=timedelta(days=1)),
    ]
    for v in variants:
        await store.set_job(v)
    expected = sorted(
        variants, key=lambda j: (rules.null_first(rules.job_columns(j)[field]), j.name)
    )
    assert await names(store, JobQuery(sort=field)) == [j.name for j in expected]
    q = JobQuery(sort=field, order=SortOrder.DESC)
    assert await names(store, q) == [j.name for j in reversed(expected)]


@pytest.mark.parametrize("sort", ["tags", "metadata", "nope", "dependent_jobs"])
async def test_unsortable_fields_are_refused(store: Store, sort: str) -> None:
    with pytest.raises(InvalidQuery):
        await store.list_jobs(JobQuery(sort=sort))


async def test_paging_is_a_slice_with_exclusive_end(store: Store) -> None:
    for i in range(7):
        await store.set_job(job(f"job-{i}"))
    page = await store.list_jobs(JobQuery(start=2, end=5))
    assert [j.name for j in page.jobs] == ["job-2", "job-3", "job-4"]
    assert page.total == 7
    assert await names(store, JobQuery(start=5)) == ["job-5", "job-6"]
    assert await names(store, JobQuery(start=5, end=100)) == ["job-5", "job-6"]
    assert await names(store, JobQuery(start=4, end=2)) == []
    assert await names(store, JobQuery(start=10, end=12)) == []
    page = await store.list_jobs(JobQuery(q="job-1", start=0, end=0))
    assert (page.jobs, page.total) == ([], 1)


async def test_negative_paging_is_refused(store: Store) -> None:
    with pytest.raises(InvalidQuery):
        await store.list_jobs(JobQuery(start=-1))
    with pytest.raises(InvalidQuery):
        await store.list_jobs(JobQuery(end=-1))


async def test_status_follows_executions_in_listing(store: Store) -> None:
    await store.set_job(job("a"))
    await store.put_execution(execution("a", 1, ExecutionStatus.FAILED))
    assert await names(store, JobQuery(status=JobStatus.FAILED)) == ["a"]
    assert await names(store, JobQuery(sort="error_count", order=SortOrder.DESC)) == ["a"]
