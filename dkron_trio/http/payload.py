"""Reading request bodies and writing the API's objects.

A body is read whole (the app's body limit already refused anything larger with 413) and
decoded strictly: not UTF-8, not JSON, or JSON's NaN/Infinity are 400s saying so. Jobs go
out with ``next`` taken from the scheduler, so it is the time the job will really fire.
"""

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import attrs
from quart import request

from dkron_trio.execution import Execution
from dkron_trio.http.context import ApiDeps
from dkron_trio.http.errors import ApiError
from dkron_trio.job import Job, format_time


def _no_constants(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(data: bytes, what: str) -> object:
    """Strict JSON from bytes; ApiError 400 naming ``what`` on any problem."""
    if not data.strip():
        raise ApiError(400, f"{what} is empty: expected JSON")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise ApiError(400, f"{what} is not UTF-8 text") from None
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        raise ApiError(400, f"{what} is not valid JSON: {exc}") from None


async def read_json_body() -> object:
    """The request body as JSON (any content type, like Dkron's binding)."""
    return parse_json(
        await request.get_data(cache=False, as_text=False, parse_form_data=False), "request body"
    )


def job_path(name: str) -> str:
    return f"/v1/jobs/{quote(name, safe='')}"


def job_json(deps: ApiDeps, job: Job, now: datetime) -> dict[str, Any]:
    """The job's wire form with ``next`` from the scheduler, or from the schedule when the
    scheduler does not hold the job (child, disabled or finished jobs give null)."""
    data = job.to_json()
    due = deps.scheduler.next_fire(job.name)
    if due is None:
        due = job.compute_next(now)
    data["next"] = None if due is None else format_time(due)
    return data


def with_live_output(deps: ApiDeps, executions: Iterable[Execution]) -> list[Execution]:
    """Running executions get the output they have produced so far on this node."""
    live = {ex.id: ex for ex in deps.runs.running()}
    return [
        attrs.evolve(ex, output=live[ex.id].output)
        if ex.id in live and not ex.status.finished
        else ex
        for ex in executions
    ]
