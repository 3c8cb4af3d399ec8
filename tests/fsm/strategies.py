"""Hypothesis strategies for commands whose values survive the wire (UTC times from 1970,
durations in whole milliseconds, 64-bit integers)."""

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from dkron_trio.acl import AclToken, Role, issue
from dkron_trio.commands import (
    Command,
    DeleteExecutions,
    DeleteJob,
    DeleteToken,
    PutExecution,
    PutExecutions,
    RecordMissed,
    RecordPlans,
    SetCursor,
    SetJob,
    SetMember,
    SetToken,
)
from dkron_trio.execution import Execution, ExecutionStatus, MissedTick, MissReason
from dkron_trio.job import Concurrency, Job, JobStatus, MisfirePolicy
from dkron_trio.notify.targets import EmailTarget, JobNotify, NotifyEvent, WebhookTarget
from dkron_trio.store.base import PlanRecord

names = st.text(min_size=1, max_size=12)
texts = st.text(max_size=20)
ints = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
opt_times = st.none() | times
durations = st.integers(min_value=0, max_value=10**9).map(lambda ms: timedelta(milliseconds=ms))
str_maps = st.dictionaries(texts, texts, max_size=3)
events = st.lists(st.sampled_from(NotifyEvent), unique=True, max_size=4).map(tuple)
notifies = st.builds(
    JobNotify,
    webhooks=st.lists(
        st.builds(
            WebhookTarget,
            url=texts,
            events=events,
            payload=texts,
            headers=str_maps.map(lambda headers: tuple(headers.items())),
        ),
        max_size=2,
    ).map(tuple),
    emails=st.lists(
        st.builds(
            EmailTarget, to=st.lists(texts, max_size=2).map(tuple), events=events, payload=texts
        ),
        max_size=2,
    ).map(tuple),
)

jobs = st.builds(
    Job,
    name=names,
    displayname=texts,
    timezone=texts,
    schedule=texts,
    owner=texts,
    owner_email=texts,
    success_count=ints,
    error_count=ints,
    last_success=opt_times,
    last_error=opt_times,
    disabled=st.booleans(),
    tags=str_maps,
    metadata=str_maps,
    retries=ints,
    dependent_jobs=st.lists(names, max_size=3).map(tuple),
    parent_job=texts,
    processors=st.dictionaries(texts, str_maps, max_size=2),
    concurrency=st.sampled_from(Concurrency),
    executor=texts,
    executor_config=str_maps,
    status=st.sampled_from(JobStatus),
    next=opt_times,
    ephemeral=st.booleans(),
    starts_at=opt_times,
    expires_at=opt_times,
    created_at=times,
    misfire_policy=st.sampled_from(MisfirePolicy),
    misfire_grace=durations,
    retry_backoff=durations,
    retry_other_node=st.booleans(),
    timeout=st.none() | durations.filter(bool),
    retention_count=ints,
    retention_age=st.none() | durations.filter(bool),
    notify=notifies,
)


def executions(job_name: st.SearchStrategy[str] = names) -> st.SearchStrategy[Execution]:
    return st.builds(
        Execution,
        id=names,
        job_name=job_name,
        started_at=times,
        finished_at=opt_times,
        success=st.booleans(),
        output=st.text(max_size=200),
        node_name=texts,
        group=ints,
        attempt=ints,
        scheduled_at=opt_times,
        fence=ints,
        status=st.sampled_from(ExecutionStatus),
        exit_code=st.none() | ints,
        output_truncated=st.booleans(),
    )


def missed_ticks(job_name: st.SearchStrategy[str] = names) -> st.SearchStrategy[MissedTick]:
    return st.builds(
        MissedTick,
        job_name=job_name,
        scheduled_at=times,
        reason=st.sampled_from(MissReason),
        recorded_at=times,
        detail=texts,
    )


@st.composite
def plan_records(draw: st.DrawFn) -> PlanRecord:
    name = draw(names)
    return PlanRecord(
        name,
        draw(times),
        draw(st.lists(missed_ticks(st.just(name)), max_size=3)),
        draw(st.lists(executions(st.just(name)), max_size=3)),
    )


@st.composite
def record_plans(draw: st.DrawFn) -> RecordPlans:
    return RecordPlans(tuple(draw(st.lists(plan_records(), max_size=3))))


@st.composite
def tokens(draw: st.DrawFn) -> AclToken:
    secret = draw(st.binary(min_size=32, max_size=32))
    return issue(secret, draw(st.sampled_from(Role)), draw(texts), draw(times))[1]


commands: st.SearchStrategy[Command] = st.one_of(
    st.builds(SetJob, jobs),
    st.builds(DeleteJob, names),
    st.builds(PutExecution, executions()),
    st.builds(PutExecutions, st.lists(executions(), max_size=3).map(tuple)),
    st.builds(DeleteExecutions, names),
    st.builds(RecordMissed, missed_ticks()),
    st.builds(SetCursor, names, times),
    record_plans(),
    st.builds(
        SetMember,
        st.integers(1, (1 << 63) - 1),
        names,
        st.sampled_from(["127.0.0.1:6868", "[::1]:7000"]),
    ),
    st.builds(SetToken, tokens(), st.booleans()),
    st.builds(DeleteToken, st.text(alphabet="0123456789abcdef", min_size=16, max_size=16)),
)
