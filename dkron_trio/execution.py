"""Executions (Dkron's unit in the API: one attempt of one run on one node) and missed ticks.

Also the pure rules the stores share about executions: how a job's status follows from its
latest run, and how output is cut to its tail for listings.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

import attrs

from dkron_trio.job import (
    EPOCH,
    GO_ZERO_TIME,
    JobStatus,
    ValidationError,
    format_time,
    parse_time,
)


class ExecutionStatus(Enum):
    """Where an execution stands; every status but RUNNING is final."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    LOST = "lost"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self is not ExecutionStatus.RUNNING


class MissReason(Enum):
    """Why a scheduled tick did not run."""

    OVERLAP = "overlap"
    MISFIRE = "misfire"
    NO_TARGETS = "no_targets"
    PAUSED = "paused"
    DISABLED = "disabled"
    EXPIRED = "expired"


@attrs.frozen(kw_only=True)
class Execution:
    """One attempt of one run on one node.

    ``group`` is shared by every execution of one run (all nodes, all attempts); ``fence`` is the
    plan's fencing token. ``output_truncated`` is set only on listings that cut the output.
    """

    id: str
    job_name: str
    started_at: datetime
    finished_at: datetime | None
    success: bool
    output: str
    node_name: str
    group: int
    attempt: int
    scheduled_at: datetime | None
    fence: int
    status: ExecutionStatus
    exit_code: int | None
    output_truncated: bool = False

    def to_json(self) -> dict[str, Any]:
        """Dkron's form (finished_at is Go's zero time while running) plus our fields."""
        return {
            "id": self.id,
            "job_name": self.job_name,
            "started_at": format_time(self.started_at),
            "finished_at": GO_ZERO_TIME
            if self.finished_at is None
            else format_time(self.finished_at),
            "success": self.success,
            "output": self.output,
            "node_name": self.node_name,
            "group": self.group,
            "attempt": self.attempt,
            "scheduled_at": None if self.scheduled_at is None else format_time(self.scheduled_at),
            "fence": self.fence,
            "status": self.status.value,
            "exit_code": self.exit_code,
            "output_truncated": self.output_truncated,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> "Execution":
        """Parse an execution (ours or Dkron's); raises ValidationError naming the field.

        A Dkron execution without ``status`` gets one from ``finished_at``/``success``.
        """
        if not isinstance(obj, Mapping):
            raise ValidationError("execution", "must be a JSON object")
        started_at = parse_time(obj.get("started_at"), "started_at")
        if started_at is None:
            raise ValidationError("started_at", "is required")
        finished_at = parse_time(obj.get("finished_at"), "finished_at")
        success = _typed(obj, "success", bool, False)
        raw_status = obj.get("status")
        if raw_status is None or raw_status == "":
            if finished_at is None:
                status = ExecutionStatus.RUNNING
            else:
                status = ExecutionStatus.SUCCESS if success else ExecutionStatus.FAILED
        else:
            try:
                status = ExecutionStatus(raw_status)
            except ValueError:
                raise ValidationError(
                    "status", f"invalid execution status {raw_status!r}"
                ) from None
        job_name = _typed(obj, "job_name", str, "")
        if not job_name:
            raise ValidationError("job_name", "is required")
        node_name = _typed(obj, "node_name", str, "")
        return cls(
            id=_typed(obj, "id", str, "") or make_execution_id(started_at, node_name),
            job_name=job_name,
            started_at=started_at,
            finished_at=finished_at,
            success=success,
            output=_typed(obj, "output", str, ""),
            node_name=node_name,
            group=_typed(obj, "group", int, 0),
            attempt=_typed(obj, "attempt", int, 1),
            scheduled_at=parse_time(obj.get("scheduled_at"), "scheduled_at"),
            fence=_typed(obj, "fence", int, 0),
            status=status,
            exit_code=_typed(obj, "exit_code", int, None),
            output_truncated=_typed(obj, "output_truncated", bool, False),
        )


@attrs.frozen
class MissedTick:
    """A scheduled tick that did not run, and why (shown per job)."""

    job_name: str
    scheduled_at: datetime
    reason: MissReason
    recorded_at: datetime
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "job_name": self.job_name,
            "scheduled_at": format_time(self.scheduled_at),
            "reason": self.reason.value,
            "recorded_at": format_time(self.recorded_at),
            "detail": self.detail,
        }


def make_execution_id(started_at: datetime, node_name: str) -> str:
    """Dkron's execution id: ``<started_at as unix nanoseconds>-<node name>``."""
    return f"{unix_nanos(started_at)}-{node_name}"


def unix_nanos(t: datetime) -> int:
    """Nanoseconds since the Unix epoch of an aware datetime (exact, no float rounding)."""
    return (t.astimezone(UTC) - EPOCH) // timedelta(microseconds=1) * 1000


def run_status(executions: Iterable[Execution]) -> JobStatus:
    """A job's status from the finished executions of its latest finished run.

    The latest run is the highest ``group`` among finished executions. Within it, a failure
    counts only at the highest attempt (lower attempts were retried), a success at any attempt
    (it was final): all success -> success, all failed -> failed, else partially_failed. So a
    run that succeeds on retry is ``success``.
    """
    finished = [ex for ex in executions if ex.status.finished]
    if not finished:
        return JobStatus.UNTRIGGERED
    group = max(ex.group for ex in finished)
    latest = [ex for ex in finished if ex.group == group]
    top = max(ex.attempt for ex in latest)
    outcomes = [
        ex.status is ExecutionStatus.SUCCESS
        for ex in latest
        if ex.status is ExecutionStatus.SUCCESS or ex.attempt == top
    ]
    if all(outcomes):
        return JobStatus.SUCCESS
    if not any(outcomes):
        return JobStatus.FAILED
    return JobStatus.PARTIALLY_FAILED


def output_tail(output: str, limit: int) -> tuple[str, bool]:
    """The last ``limit`` bytes (UTF-8) of ``output`` and whether it was cut.

    A character split by the cut is dropped whole.
    """
    data = output.encode()
    if len(data) <= limit:
        return output, False
    return tail_bytes_text(data[len(data) - limit :]), True


def tail_bytes_text(data: bytes) -> str:
    """Decode a byte tail cut from UTF-8 text, dropping a partial first character."""
    return data.decode("utf-8", errors="ignore")


def _typed(obj: Mapping[str, Any], key: str, kind: type[Any], default: Any) -> Any:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValidationError(key, f"must be {_KIND_NAMES.get(kind, kind.__name__)}")
    return value


_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false"}
