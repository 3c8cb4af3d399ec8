"""The UI's pages: a Quart blueprint at ``/ui`` rendering Jinja2 templates.

Handlers only read, through the same services the API handlers use (`ApiDeps`), and shape
what they read for the templates; the page script makes every change through the JSON API.
A page that refreshes itself fetches its own URL again and swaps its ``data-live`` parts.
"""

from datetime import datetime
from typing import Any

from quart import Blueprint, Response, redirect, render_template, request, url_for
from quart_trio import QuartTrio

from dkron_trio.execution import Execution
from dkron_trio.executors.registry import known_executors
from dkron_trio.http.context import ApiDeps
from dkron_trio.http.payload import job_json, job_path, with_live_output
from dkron_trio.http.router import ApiState
from dkron_trio.http.ui import present
from dkron_trio.http.ui.listing import (
    PER_PAGE_CHOICES,
    SORT_FIELDS,
    STATUS_CHOICES,
    UNTRIGGERED,
    ListParams,
    Pager,
)
from dkron_trio.job import Concurrency, Job, JobStatus, MisfirePolicy
from dkron_trio.store.base import ExecutionQuery, JobNotFound, JobQuery, SortOrder

EXECUTIONS_SHOWN = 25
"""Newest executions on a job page (the API lists them all)."""
OUTPUT_PREVIEW_BYTES = 4096
"""Output tail shown per execution; "Load full output" fetches the rest from the API."""
MISSED_SHOWN = 50
RECENT_FAILURES = 10
DASHBOARD_RUNNING = 20


def _context(deps: ApiDeps) -> dict[str, Any]:
    return {
        "node_name": deps.node_name,
        "version": deps.version,
        "paused": deps.scheduler.paused,
        "show_time": present.show_time,
        "show_span": present.show_span,
        "job_path": job_path,
        "status_label": _status_label,
    }


def _status_label(status: JobStatus | str) -> str:
    value = status.value if isinstance(status, JobStatus) else status
    return value or UNTRIGGERED


async def _running(deps: ApiDeps) -> list[Execution]:
    """Running executions of the whole cluster (the store's view), with the output this node
    has for its own, oldest first."""
    return with_live_output(deps, await deps.store.running_executions())


async def _count(deps: ApiDeps, query: JobQuery) -> int:
    return (await deps.store.list_jobs(query)).total


def ui_blueprint(state: ApiState) -> Blueprint:
    """The UI's pages and static files, reading ``state``'s services."""
    deps = state.deps
    bp = Blueprint(
        "ui",
        __name__,
        url_prefix=present.UI_PREFIX,
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )

    @bp.context_processor
    async def common() -> dict[str, Any]:
        return _context(deps)

    @bp.errorhandler(JobNotFound)
    async def job_not_found(exc: JobNotFound) -> tuple[str, int]:
        page = await render_template("ui/not_found.html", message=str(exc), title="Not found")
        return page, 404

    @bp.get("/")
    async def dashboard() -> str:
        counts = {
            _status_label(s): await _count(deps, JobQuery(status=s, end=0)) for s in JobStatus
        }
        failures = await deps.store.list_jobs(
            JobQuery(sort="last_error", order=SortOrder.DESC, end=RECENT_FAILURES)
        )
        running = await _running(deps)
        return await render_template(
            "ui/dashboard.html",
            title="Dashboard",
            leader=deps.cluster.leader(),
            members=sorted(deps.cluster.members(), key=lambda m: m.name),
            total=await _count(deps, JobQuery(end=0)),
            disabled=await _count(deps, JobQuery(disabled=True, end=0)),
            counts=counts,
            failures=[job for job in failures.jobs if job.last_error is not None],
            running=running[:DASHBOARD_RUNNING],
            running_total=len(running),
            now=deps.clock.now(),
            run_span=present.run_span,
        )

    @bp.get("/jobs")
    async def jobs() -> str:
        params = ListParams.from_args(request.args)
        page = await deps.store.list_jobs(params.job_query())
        pager = Pager(params.page, params.per_page, page.total)
        now = deps.clock.now()
        return await render_template(
            "ui/jobs.html",
            title="Jobs",
            params=params,
            pager=pager,
            rows=[present.JobRow.of(job, _next(deps, job, now)) for job in page.jobs],
            status_choices=STATUS_CHOICES,
            sort_fields=SORT_FIELDS,
            per_page_choices=PER_PAGE_CHOICES,
        )

    @bp.get("/jobs/<name>/edit")
    async def edit_job(name: str) -> str:
        job = await deps.store.get_job(name)
        return await _form(job)

    @bp.get("/new")
    async def new_job() -> str:
        return await _form(None)

    async def _form(job: Job | None) -> str:
        return await render_template(
            "ui/form.html",
            title=f"Edit {job.name}" if job else "New job",
            job=job,
            values=present.form_values(job),
            executors=sorted(known_executors()),
            concurrency=[c.value for c in Concurrency],
            misfire=[m.value for m in MisfirePolicy],
            zones=present.time_zones(),
        )

    @bp.get("/jobs/<name>")
    async def job(name: str) -> str:
        found = await deps.store.get_job(name)
        now = deps.clock.now()
        executions = await deps.store.list_executions(
            name, ExecutionQuery(limit=EXECUTIONS_SHOWN, output_size_limit=OUTPUT_PREVIEW_BYTES)
        )
        return await render_template(
            "ui/job.html",
            title=found.name,
            job=found,
            wire=job_json(deps, found, now),
            upcoming=present.upcoming(found, now),
            zoned_time=present.zoned_time,
            executions=with_live_output(deps, executions),
            executions_shown=EXECUTIONS_SHOWN,
            missed=await deps.store.list_missed(name, MISSED_SHOWN),
            missed_shown=MISSED_SHOWN,
            now=now,
            run_span=present.run_span,
        )

    @bp.get("/busy")
    async def busy() -> str:
        return await render_template(
            "ui/busy.html",
            title="Busy",
            running=await _running(deps),
            now=deps.clock.now(),
            run_span=present.run_span,
        )

    return bp


def _next(deps: ApiDeps, job: Job, now: datetime) -> str | None:
    """The job's next run as the API reports it (the scheduler's time when it holds it)."""
    value = job_json(deps, job, now)["next"]
    assert value is None or isinstance(value, str)
    return value


def install_ui(app: QuartTrio, state: ApiState) -> None:
    """Serve the UI at ``/ui`` and send ``/`` there."""
    app.register_blueprint(ui_blueprint(state))

    async def root() -> Response:
        return redirect(url_for("ui.dashboard"))  # type: ignore[return-value]

    app.add_url_rule("/", "ui_root", root, methods=["GET"])
