"""Builders for store tests: jobs and executions with fixed times."""

from datetime import UTC, datetime, timedelta
from typing import Any

from dkron_trio.acl import AclToken, Role, issue
from dkron_trio.execution import Execution, ExecutionStatus
from dkron_trio.job import Job
from dkron_trio.notify.targets import EmailTarget, JobNotify, NotifyEvent, WebhookTarget

T0 = datetime(2024, 1, 1, tzinfo=UTC)
NOTIFY = JobNotify(
    webhooks=(
        WebhookTarget(
            "https://hooks.example.com/x",
            (NotifyEvent.FAILURE, NotifyEvent.STATE_CHANGE),
            '{"job": "{{.JobName}}"}',
            (("X-Token", "abc"),),
        ),
    ),
    emails=(EmailTarget(("ops@example.com",), (NotifyEvent.RETRY_EXHAUSTED,)),),
)
"""Per-job notification settings using every kind of target and setting."""


def job(name: str, **fields: Any) -> Job:
    base: dict[str, Any] = {
        "schedule": "@every 10s",
        "executor": "shell",
        "executor_config": {"command": "true"},
        "created_at": T0,
    }
    base.update(fields)
    return Job(name=name, **base)


def execution(
    job_name: str,
    n: int,
    status: ExecutionStatus = ExecutionStatus.SUCCESS,
    *,
    group: int = 1,
    attempt: int = 1,
    node: str = "node1",
    output: str = "",
) -> Execution:
    """Execution number ``n`` of a job, started n seconds after T0, finished a second later."""
    started = T0 + timedelta(seconds=n)
    finished = status is not ExecutionStatus.RUNNING
    return Execution(
        id=f"{n:04d}-{node}",
        job_name=job_name,
        started_at=started,
        finished_at=started + timedelta(seconds=1) if finished else None,
        success=status is ExecutionStatus.SUCCESS,
        output=output,
        node_name=node,
        group=group,
        attempt=attempt,
        scheduled_at=started,
        fence=group,
        status=status,
        exit_code=(0 if status is ExecutionStatus.SUCCESS else 1) if finished else None,
    )


def token(n: int, role: Role, description: str = "") -> AclToken:
    """Token number ``n`` (its secret is ``n`` repeated), created n seconds after T0."""
    return issue(bytes([n]) * 32, role, description, T0 + timedelta(seconds=n))[1]
