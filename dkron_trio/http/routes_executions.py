"""Executions of a job: list, delete all, show one, cancel, follow live; the missed ledger."""

import attrs
from quart import Response

from dkron_trio.acl import Access
from dkron_trio.execution import Execution, output_tail
from dkron_trio.http.errors import ApiError, json_response
from dkron_trio.http.follow import follow_execution
from dkron_trio.http.payload import job_json, with_live_output
from dkron_trio.http.router import ApiState, Call, Router
from dkron_trio.http.schemas import EXECUTION, JOB, MISSED_TICK, array_of, ref
from dkron_trio.http.spec import (
    BAD_REQUEST,
    INTERNAL,
    NOT_FOUND,
    Operation,
    ParamKind,
    QueryParam,
    Reply,
    error_reply,
)
from dkron_trio.logs import get_logger
from dkron_trio.store.base import ExecutionQuery, SortOrder
from dkron_trio.store.rules import EXECUTION_SORT_FIELDS

log = get_logger(__name__)
router = Router()

_JOB_NAME = "job_name"
_EXECUTION = "execution"
_EXECUTION_NOT_FOUND = error_reply(404, "No such job or execution.")
_FOLLOW_NOTE = (
    "Open it as a WebSocket to follow a running execution: JSON text frames "
    '{"type": "output", "data": ...} with the output so far, then each new piece, then '
    '{"type": "done", "execution": {...}}; the server then closes with 1000 (1001 when it '
    "shuts down)."
)


def _output_limit(executions: list[Execution], limit: int | None) -> list[Execution]:
    if limit is None:
        return executions
    out = []
    for ex in executions:
        text, cut = output_tail(ex.output, limit)
        out.append(attrs.evolve(ex, output=text, output_truncated=cut) if cut else ex)
    return out


@router.add(
    Operation(
        method="GET",
        path="/v1/jobs/{job_name}/executions",
        operation_id="listExecutionsByJob",
        access=Access.READ,
        tag="executions",
        summary="List a job's executions",
        description="Running executions carry the output produced so far.",
        query=(
            QueryParam(
                "_sort",
                ParamKind.STRING,
                "Field to sort by (id = started_at).",
                choices=("id", *sorted(EXECUTION_SORT_FIELDS)),
                default="started_at",
            ),
            QueryParam(
                "_order", ParamKind.STRING, "Sort order.", choices=("ASC", "DESC"), default="DESC"
            ),
            QueryParam(
                "output_size_limit",
                ParamKind.INTEGER,
                "Keep only the last N bytes of each output (sets output_truncated).",
                minimum=1,
            ),
        ),
        replies=(
            Reply(200, "The executions.", array_of(EXECUTION), headers=("X-Total-Count",)),
            BAD_REQUEST,
            NOT_FOUND,
            INTERNAL,
        ),
    )
)
async def list_executions(state: ApiState, call: Call) -> Response:
    deps = state.deps
    limit = call.integer("output_size_limit")
    found = await deps.store.list_executions(
        call.path[_JOB_NAME],
        ExecutionQuery(
            sort=call.text("_sort"),
            order=SortOrder(call.text("_order").lower()),
            output_size_limit=limit,
        ),
    )
    executions = _output_limit(with_live_output(deps, found), limit)
    return json_response(
        [ex.to_json() for ex in executions], headers={"X-Total-Count": str(len(executions))}
    )


@router.add(
    Operation(
        method="DELETE",
        path="/v1/jobs/{job_name}/executions",
        operation_id="deleteExecutionsByJob",
        access=Access.ADMIN,
        tag="executions",
        summary="Delete every execution of a job and reset its counters",
        replies=(
            Reply(200, "The job with success_count, error_count, last_* reset.", ref(JOB)),
            NOT_FOUND,
            INTERNAL,
        ),
    )
)
async def delete_executions(state: ApiState, call: Call) -> Response:
    deps = state.deps
    name = call.path[_JOB_NAME]
    removed = await deps.store.delete_executions(name)
    log.info("executions deleted", job=name, count=removed)
    job = await deps.store.get_job(name)
    return json_response(job_json(deps, job, deps.clock.now()))


_SHOW = Operation(
    method="GET",
    path="/v1/jobs/{job_name}/executions/{execution}",
    operation_id="showExecutionByID",
    access=Access.READ,
    tag="executions",
    summary="Show one execution with its full output",
    description=_FOLLOW_NOTE,
    replies=(Reply(200, "The execution.", ref(EXECUTION)), _EXECUTION_NOT_FOUND, INTERNAL),
)


@router.add(_SHOW)
async def show_execution(state: ApiState, call: Call) -> Response:
    deps = state.deps
    ex = await deps.store.get_execution(call.path[_JOB_NAME], call.path[_EXECUTION])
    return json_response(with_live_output(deps, [ex])[0].to_json())


_FOLLOW = Operation(
    method="GET",
    path="/v1/jobs/{job_name}/executions/{execution}/follow",
    operation_id="followExecution",
    access=Access.READ,
    tag="executions",
    summary="Follow an execution's output live (WebSocket)",
    description=_FOLLOW_NOTE,
    replies=(
        Reply(101, "Switching to the WebSocket protocol.", content_type=""),
        error_reply(400, "Not a WebSocket upgrade request."),
        _EXECUTION_NOT_FOUND,
    ),
)


async def _follow(state: ApiState, call: Call) -> Response | None:
    ex = await state.deps.store.get_execution(call.path[_JOB_NAME], call.path[_EXECUTION])
    await follow_execution(state, ex)
    return None


router.add(_FOLLOW, websocket=True)(_follow)
router.add(_SHOW, websocket=True)(_follow)


@router.add(
    Operation(
        method="POST",
        path="/v1/jobs/{job_name}/executions/{execution}/cancel",
        operation_id="cancelExecution",
        access=Access.OPERATE,
        tag="executions",
        summary="Cancel a running execution",
        description="The process group is killed; the execution finishes as cancelled.",
        replies=(
            Reply(202, "Cancelling; the execution as it was.", ref(EXECUTION)),
            _EXECUTION_NOT_FOUND,
            error_reply(409, "The execution is not running (here or on its node)."),
            INTERNAL,
        ),
    )
)
async def cancel_execution(state: ApiState, call: Call) -> Response:
    deps = state.deps
    ex = await deps.store.get_execution(call.path[_JOB_NAME], call.path[_EXECUTION])
    if ex.status.finished:
        raise ApiError(409, f"execution {ex.id} already finished ({ex.status.value})")
    if not deps.runs.cancel_execution(ex.id) and not await deps.runs.cancel_elsewhere(ex):
        raise ApiError(409, f"execution {ex.id} is not running (here or on {ex.node_name})")
    log.info("execution cancel requested", job=ex.job_name, execution=ex.id)
    return json_response(with_live_output(deps, [ex])[0].to_json(), 202)


@router.add(
    Operation(
        method="GET",
        path="/v1/jobs/{job_name}/missed",
        operation_id="listMissedTicks",
        access=Access.READ,
        tag="executions",
        summary="Ticks of the job that did not run, and why (newest first)",
        query=(
            QueryParam(
                "limit",
                ParamKind.INTEGER,
                "At most this many.",
                minimum=1,
                maximum=1000,
                default=100,
            ),
        ),
        replies=(
            Reply(200, "The missed ticks.", array_of(MISSED_TICK), headers=("X-Total-Count",)),
            BAD_REQUEST,
            NOT_FOUND,
            INTERNAL,
        ),
    )
)
async def list_missed(state: ApiState, call: Call) -> Response:
    limit = call.integer("limit")
    assert limit is not None
    missed = await state.deps.store.list_missed(call.path[_JOB_NAME], limit)
    return json_response([m.to_json() for m in missed], headers={"X-Total-Count": str(len(missed))})
