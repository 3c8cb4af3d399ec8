"""How the pages show values: times, durations, upcoming fire times and form values."""

import functools
import json
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import attrs

from dkron_trio.execution import Execution
from dkron_trio.job import Job, ValidationError, format_duration
from dkron_trio.schedule_base import ScheduleError

UPCOMING_COUNT = 5
UI_PREFIX = "/ui"
"""Where the UI is served (the blueprint's prefix)."""
UI_JOBS = UI_PREFIX + "/jobs/"

JSON_FIELDS = ("tags", "metadata", "processors", "executor_config", "notify")
"""Job fields edited as JSON text in the form."""


@functools.cache
def time_zones() -> tuple[str, ...]:
    """Every IANA zone name this Python knows (for the form's suggestions), read once."""
    return tuple(sorted(zoneinfo.available_timezones()))


def show_time(value: datetime | None) -> str:
    """A time for tables: UTC to the second, or an em dash."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def zoned_time(value: datetime, zone: str) -> str:
    """A time in ``zone`` ("" = UTC) with its offset, as the job's owner reads it."""
    local = value.astimezone(zoneinfo.ZoneInfo(zone) if zone else UTC)
    return local.strftime("%Y-%m-%d %H:%M:%S %Z (UTC%z)")


def show_span(value: timedelta | None) -> str:
    """A duration as Go writes it (``1m30s``), or an em dash."""
    return format_duration(value) or "—"


def run_span(ex: Execution, now: datetime) -> str:
    """How long an execution ran (or has been running), to the tenth of a second."""
    end = ex.finished_at or now
    seconds = max((end - ex.started_at).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{rest:02d}s" if hours else f"{minutes}m{rest:02d}s"


@attrs.frozen
class JobRow:
    """One line of the jobs list, formatted once in Python (the template only places it)."""

    name: str
    href: str
    displayname: str
    schedule: str
    parent_job: str
    status: str
    next: str
    last_success: str
    last_error: str
    success_count: int
    error_count: int
    disabled: bool

    @classmethod
    def of(cls, job: Job, next_due: str | None) -> "JobRow":
        return cls(
            name=job.name,
            href=UI_JOBS + quote(job.name, safe=""),
            displayname=job.displayname,
            schedule=job.schedule,
            parent_job=job.parent_job,
            status=job.status.value or "untriggered",
            next=next_due.replace("T", " ") if next_due else "—",
            last_success=show_time(job.last_success),
            last_error=show_time(job.last_error),
            success_count=job.success_count,
            error_count=job.error_count,
            disabled=job.disabled,
        )


@attrs.frozen
class Upcoming:
    """The next fire times of a job as its schedule gives them, and why there may be none."""

    zone: str
    times: tuple[datetime, ...]
    note: str


def upcoming(job: Job, now: datetime, count: int = UPCOMING_COUNT) -> Upcoming:
    """The job's next ``count`` fire times after ``now`` (starts_at and expires_at applied).

    A disabled job shows the times it would fire at once enabled, and says so."""
    if job.parent_job:
        return Upcoming("", (), f"runs after its parent job {job.parent_job} succeeds")
    try:
        zone = job.schedule_obj().timezone
    except (ScheduleError, ValidationError) as exc:
        return Upcoming("", (), f"schedule cannot be used: {exc}")
    enabled = attrs.evolve(job, disabled=False) if job.disabled else job
    times: list[datetime] = []
    after = now
    while len(times) < count:
        due = enabled.compute_next(after)
        if due is None:
            break
        times.append(due)
        after = due
    note = ""
    if not times:
        note = "does not fire again"
    elif job.disabled:
        note = "disabled: these are the times it would fire at once enabled"
    return Upcoming(zone, tuple(times), note)


def form_values(job: Job | None) -> dict[str, Any]:
    """The form's initial values: the job's wire form with maps as indented JSON text."""
    data = (job or Job(name="")).to_json()
    values: dict[str, Any] = {
        k: ("" if v is None else v) for k, v in data.items() if k not in JSON_FIELDS
    }
    for key in JSON_FIELDS:
        values[key] = _json_text(data[key])
    if job is None:
        values["executor"] = "shell"
        values["executor_config"] = _json_text({"command": ""})
    return values


def _json_text(value: Mapping[str, Any]) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) if value else "{}"
