"""Jobs: list, create/update, show, delete, run, toggle, restore."""

from collections.abc import Mapping, Sequence

import attrs
from quart import Response, request

from dkron_trio.acl import Access
from dkron_trio.http.context import ApiDeps
from dkron_trio.http.errors import ApiError, json_response
from dkron_trio.http.payload import job_json, job_path, parse_json, read_json_body
from dkron_trio.http.router import ApiState, Call, Router
from dkron_trio.http.schemas import JOB, array_of, check_job_body, check_job_list, ref
from dkron_trio.http.spec import (
    BAD_REQUEST,
    INTERNAL,
    NOT_FOUND,
    TOO_LARGE,
    UNAVAILABLE,
    Body,
    Operation,
    ParamKind,
    QueryParam,
    Reply,
    error_reply,
)
from dkron_trio.job import Job, JobStatus, ValidationError
from dkron_trio.logs import get_logger
from dkron_trio.runs import RunRefused
from dkron_trio.store.base import JobNotFound, JobQuery, SortOrder, StoreError
from dkron_trio.store.rules import JOB_SORT_FIELDS
from dkron_trio.targets import Node, select_targets

log = get_logger(__name__)
router = Router()

PAUSED_MESSAGE = "New job submissions are currently paused"
_UNTRIGGERED = "untriggered"

_STATUS_CHOICES = tuple(_UNTRIGGERED if s is JobStatus.UNTRIGGERED else s.value for s in JobStatus)
_JOB_NAME = "job_name"

_RUNONCREATE = QueryParam(
    "runoncreate",
    ParamKind.PRESENCE,
    "If present, whatever its value, run the job once right after it is stored.",
)
_CONSISTENT = QueryParam(
    "consistent",
    ParamKind.PRESENCE,
    "If present, answer only after this server has applied every write acknowledged before "
    "the request (a linearizable read through the leader; 503 without one).",
)
_JOB_BODY = Body(ref(JOB), "The job. Creating an existing name updates it (upsert).")
_WRITE_REPLIES = (
    Reply(201, "Stored; the answer is the job as stored.", ref(JOB), headers=("Location",)),
    BAD_REQUEST,
    error_reply(404, "parent_job names a job that does not exist."),
    TOO_LARGE,
    INTERNAL,
    UNAVAILABLE,
)
_FORCE = QueryParam(
    "force",
    ParamKind.BOOLEAN,
    "Run even if the job is disabled, its concurrency is forbid and it is running, or the "
    "node is paused.",
    default=False,
)
_RUN_REPLIES = (
    Reply(
        202,
        "The run has started; its execution shows up under /executions. Unlike Dkron the "
        "answer does not wait for the run to finish.",
        ref(JOB),
        headers=("Location",),
    ),
    BAD_REQUEST,
    NOT_FOUND,
    error_reply(
        409,
        "Refused: the job is disabled, or its concurrency is forbid and it is running "
        "(use ?force=true), or no node matches its tags.",
    ),
    INTERNAL,
    error_reply(503, "Paused (POST /v1/pause; use ?force=true) or no cluster leader."),
)


def _require_writable(deps: ApiDeps) -> None:
    if deps.scheduler.paused:
        raise ApiError(503, PAUSED_MESSAGE)
    if deps.cluster.leader() is None:
        raise ApiError(503, "no cluster leader: try again later")


async def notify_scheduler(deps: ApiDeps, name: str, *parents: str) -> None:
    """Tell the scheduler a job changed, and its old and new parents (their dependents)."""
    await deps.scheduler.job_changed(name)
    for parent in sorted(set(parents) - {"", name}):
        await deps.scheduler.job_changed(parent)


async def _stored_parent(deps: ApiDeps, name: str) -> str:
    try:
        return (await deps.store.get_job(name)).parent_job
    except JobNotFound:
        return ""


async def _upsert(state: ApiState, call: Call, body: object, path_name: str | None) -> Response:
    deps = state.deps
    _require_writable(deps)
    if path_name is not None and isinstance(body, Mapping):
        given = body.get("name")
        if given is None or given == "":
            body = {**body, "name": path_name}
        elif given != path_name:
            raise ValidationError("name", f"{given!r} does not match the path's {path_name!r}")
    obj = check_job_body(body)
    now = deps.clock.now()
    job = Job.from_json(obj, now=now)
    previous_parent = await _stored_parent(deps, job.name)
    stored = await deps.store.set_job(job)
    await notify_scheduler(deps, stored.name, previous_parent, stored.parent_job)
    log.info("job stored", job=stored.name)
    if call.flag(_RUNONCREATE.name):
        try:
            await deps.runs.start_manual_run(stored)
        except RunRefused as exc:
            log.info("run on create refused", job=stored.name, reason=str(exc))
    return json_response(job_json(deps, stored, now), 201, {"Location": job_path(stored.name)})


@router.add(
    Operation(
        method="GET",
        path="/v1/jobs",
        operation_id="getJobs",
        access=Access.READ,
        tag="jobs",
        summary="List jobs",
        description="Filters combine with AND. X-Total-Count is the number of matching jobs "
        "before _start/_end cut the page.",
        query=(
            _CONSISTENT,
            QueryParam(
                "metadata",
                ParamKind.MAP,
                "metadata[key]=value: only jobs with this metadata pair (repeatable).",
            ),
            QueryParam(
                "_sort",
                ParamKind.STRING,
                "Field to sort by (id = name).",
                choices=("id", *JOB_SORT_FIELDS),
                default="name",
            ),
            QueryParam(
                "_order", ParamKind.STRING, "Sort order.", choices=("ASC", "DESC"), default="ASC"
            ),
            QueryParam(
                "q",
                ParamKind.STRING,
                "Case-insensitive substring of name or displayname.",
                default="",
            ),
            QueryParam(
                "status",
                ParamKind.STRING,
                "Only jobs whose latest run has this outcome (untriggered = never ran).",
                choices=_STATUS_CHOICES,
            ),
            QueryParam("disabled", ParamKind.BOOLEAN, "Only disabled (true) or enabled jobs."),
            QueryParam("_start", ParamKind.INTEGER, "First index of the page.", minimum=0),
            QueryParam("_end", ParamKind.INTEGER, "Index after the page's last.", minimum=0),
        ),
        replies=(
            Reply(200, "The jobs.", array_of(JOB), headers=("X-Total-Count",)),
            BAD_REQUEST,
            UNAVAILABLE,
            INTERNAL,
        ),
    )
)
async def list_jobs(state: ApiState, call: Call) -> Response:
    deps = state.deps
    if call.flag("consistent"):
        await deps.cluster.linearize()
    status = call.optional_text("status")
    query = JobQuery(
        metadata=call.mapping("metadata"),
        q=call.text("q"),
        status=None
        if status is None
        else (JobStatus.UNTRIGGERED if status == _UNTRIGGERED else JobStatus(status)),
        disabled=call.boolean("disabled"),
        sort=call.text("_sort"),
        order=SortOrder(call.text("_order").lower()),
        start=call.integer("_start") or 0,
        end=call.integer("_end"),
    )
    page = await deps.store.list_jobs(query)
    now = deps.clock.now()
    return json_response(
        [job_json(deps, job, now) for job in page.jobs], headers={"X-Total-Count": str(page.total)}
    )


@router.add(
    Operation(
        method="POST",
        path="/v1/jobs",
        operation_id="createOrUpdateJob",
        access=Access.ADMIN,
        tag="jobs",
        summary="Create or update a job",
        query=(_RUNONCREATE,),
        body=_JOB_BODY,
        replies=_WRITE_REPLIES,
    )
)
async def create_job(state: ApiState, call: Call) -> Response:
    return await _upsert(state, call, await read_json_body(), None)


@router.add(
    Operation(
        method="PATCH",
        path="/v1/jobs",
        operation_id="createOrUpdateJobPatch",
        access=Access.ADMIN,
        tag="jobs",
        summary="Create or update a job (same as POST: a full upsert, like Dkron)",
        query=(_RUNONCREATE,),
        body=_JOB_BODY,
        replies=_WRITE_REPLIES,
    )
)
async def patch_job(state: ApiState, call: Call) -> Response:
    return await _upsert(state, call, await read_json_body(), None)


@router.add(
    Operation(
        method="PUT",
        path="/v1/jobs/{job_name}",
        operation_id="putJob",
        access=Access.ADMIN,
        tag="jobs",
        summary="Create or update the job named in the path",
        description="The body's name may be left out; if given it must equal the path's "
        "(Dkron ignores the path and uses the body's name).",
        query=(_RUNONCREATE,),
        body=_JOB_BODY,
        replies=_WRITE_REPLIES,
    )
)
async def put_job(state: ApiState, call: Call) -> Response:
    return await _upsert(state, call, await read_json_body(), call.path[_JOB_NAME])


@router.add(
    Operation(
        method="GET",
        path="/v1/jobs/{job_name}",
        operation_id="showJobByName",
        access=Access.READ,
        tag="jobs",
        summary="Show a job",
        query=(_CONSISTENT,),
        replies=(Reply(200, "The job.", ref(JOB)), NOT_FOUND, UNAVAILABLE, INTERNAL),
    )
)
async def show_job(state: ApiState, call: Call) -> Response:
    deps = state.deps
    if call.flag("consistent"):
        await deps.cluster.linearize()
    job = await deps.store.get_job(call.path[_JOB_NAME])
    return json_response(job_json(deps, job, deps.clock.now()))


@router.add(
    Operation(
        method="DELETE",
        path="/v1/jobs/{job_name}",
        operation_id="deleteJob",
        access=Access.ADMIN,
        tag="jobs",
        summary="Delete a job with its executions and missed-tick records",
        replies=(
            Reply(200, "The deleted job.", ref(JOB)),
            NOT_FOUND,
            error_reply(409, "The job has dependent jobs: delete them first."),
            INTERNAL,
        ),
    )
)
async def delete_job(state: ApiState, call: Call) -> Response:
    deps = state.deps
    deleted = await deps.store.delete_job(call.path[_JOB_NAME])
    await notify_scheduler(deps, deleted.name, deleted.parent_job)
    log.info("job deleted", job=deleted.name)
    return json_response(deleted.to_json())


async def _run(state: ApiState, call: Call) -> Response:
    deps = state.deps
    job = await deps.store.get_job(call.path[_JOB_NAME])
    force = call.flag(_FORCE.name)
    if deps.scheduler.paused and not force:
        raise ApiError(503, "runs are paused (POST /v1/unpause, or run with ?force=true)")
    if deps.cluster.leader() is None:
        raise ApiError(503, "no cluster leader: try again later")
    nodes = [Node(m.name, m.tags) for m in deps.cluster.members()]
    if not select_targets(job.tags, nodes):
        raise ApiError(409, f"no target node matches the job's tags {dict(job.tags)}")
    try:
        await deps.runs.start_manual_run(job, force=force)
    except RunRefused as exc:
        raise ApiError(409, f"{exc} (use ?force=true to run anyway)") from None
    log.info("manual run started", job=job.name, force=force)
    return json_response(
        job_json(deps, job, deps.clock.now()),
        202,
        {"Location": job_path(job.name) + "/executions"},
    )


@router.add(
    Operation(
        method="POST",
        path="/v1/jobs/{job_name}",
        operation_id="runJob",
        access=Access.OPERATE,
        tag="jobs",
        summary="Run a job now",
        query=(_FORCE,),
        replies=_RUN_REPLIES,
    )
)
async def run_job(state: ApiState, call: Call) -> Response:
    return await _run(state, call)


@router.add(
    Operation(
        method="POST",
        path="/v1/jobs/{job_name}/run",
        operation_id="runJobAlias",
        access=Access.OPERATE,
        tag="jobs",
        summary="Run a job now (same as POST /v1/jobs/{job_name})",
        query=(_FORCE,),
        replies=_RUN_REPLIES,
    )
)
async def run_job_alias(state: ApiState, call: Call) -> Response:
    return await _run(state, call)


@router.add(
    Operation(
        method="POST",
        path="/v1/jobs/{job_name}/toggle",
        operation_id="toggleJob",
        access=Access.OPERATE,
        tag="jobs",
        summary="Enable a disabled job or disable an enabled one",
        replies=(Reply(200, "The job with disabled flipped.", ref(JOB)), NOT_FOUND, INTERNAL),
    )
)
async def toggle_job(state: ApiState, call: Call) -> Response:
    deps = state.deps
    job = await deps.store.get_job(call.path[_JOB_NAME])
    stored = await deps.store.set_job(attrs.evolve(job, disabled=not job.disabled))
    await notify_scheduler(deps, stored.name)
    log.info("job toggled", job=stored.name, disabled=stored.disabled)
    return json_response(job_json(deps, stored, deps.clock.now()))


@router.add(
    Operation(
        method="POST",
        path="/v1/restore",
        operation_id="restore",
        access=Access.ADMIN,
        tag="jobs",
        summary="Create or update every job of a JSON file",
        description="multipart/form-data with the field file: a JSON array of jobs. Every job "
        "is checked first (one invalid job, or a parent_job found neither in the file nor "
        "stored, rejects the whole request and stores nothing); parents are stored before "
        "their children. The answer lists 'success create NAME' or 'fail create NAME: "
        "reason' per job, as a JSON array (Dkron sends the array encoded in a JSON string).",
        body=Body(
            {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "JSON array of jobs.",
                    }
                },
            },
            "The jobs file.",
            content_type="multipart/form-data",
        ),
        replies=(
            Reply(
                200,
                "What happened to each job.",
                {"type": "array", "items": {"type": "string"}},
            ),
            error_reply(
                400, "No file field, not a JSON array of jobs, an invalid job, unknown parent."
            ),
            error_reply(
                413,
                "The body is over the body limit, or the file holds more jobs than "
                "max-jobs-per-request (1000 by default).",
            ),
            INTERNAL,
            UNAVAILABLE,
        ),
    )
)
async def restore(state: ApiState, call: Call) -> Response:
    deps = state.deps
    _require_writable(deps)
    files = await request.files
    upload = files.get("file")
    if upload is None:
        raise ValidationError("file", "multipart form field is required")
    items = check_job_list(parse_json(upload.read(), "file"))
    if len(items) > deps.max_jobs_per_request:
        raise ApiError(
            413,
            f"file: {len(items)} jobs exceed the limit of {deps.max_jobs_per_request} per "
            "request (max-jobs-per-request)",
        )
    now = deps.clock.now()
    jobs: dict[str, Job] = {}
    for index, item in enumerate(items):
        try:
            job = Job.from_json(item, now=now)
        except ValidationError as exc:
            raise ValidationError(f"file[{index}].{exc.field}", exc.message) from None
        jobs[job.name] = job
    ordered = await _parents_first(deps, jobs)
    results = []
    for job in ordered:
        previous_parent = await _stored_parent(deps, job.name)
        try:
            stored = await deps.store.set_job(job)
        except (StoreError, ValidationError) as exc:
            results.append(f"fail create {job.name}: {exc}")
            continue
        await notify_scheduler(deps, stored.name, previous_parent, stored.parent_job)
        results.append(f"success create {stored.name}")
    log.info("jobs restored", jobs=len(ordered))
    return json_response(results)


async def _parents_first(deps: ApiDeps, jobs: Mapping[str, Job]) -> Sequence[Job]:
    """The file's jobs ordered so every parent comes before its children; 400 if a parent is
    missing from both the file and the store, or the file's parents form a cycle."""
    for job in jobs.values():
        if job.parent_job and job.parent_job not in jobs:
            try:
                await deps.store.get_job(job.parent_job)
            except JobNotFound:
                raise ValidationError(
                    f"{job.name}.parent_job", f"parent job {job.parent_job!r} not found"
                ) from None
    ordered: list[Job] = []
    pending = dict(jobs)
    while pending:
        ready = [
            job for job in pending.values() if job.parent_job not in pending or job.parent_job == ""
        ]
        if not ready:
            names = ", ".join(sorted(pending))
            raise ValidationError("file", f"parent_job links form a cycle among: {names}")
        for job in ready:
            ordered.append(job)
            del pending[job.name]
    return ordered
