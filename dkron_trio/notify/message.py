"""What a notification says about a finished execution: template values, subject, body.

Pure: the sender (service.py) passes the job, the execution and this node's name.
"""

from datetime import datetime

from dkron_trio.execution import Execution, ExecutionStatus
from dkron_trio.job import Job
from dkron_trio.planner import should_retry


def is_final(job: Job, execution: Execution) -> bool:
    """Whether no further attempt follows (Dkron notifies after the final attempt only)."""
    if not execution.status.finished:
        return False
    if execution.status is ExecutionStatus.CANCELLED:
        return True
    return not should_retry(job, execution.attempt, execution.success)


def _time(value: datetime | None) -> str:
    return "" if value is None else value.isoformat()


def report(job: Job, execution: Execution, reporting_node: str) -> str:
    """Dkron's ``{{.Report}}``: a short multi-line summary of the execution."""
    return "\n".join(
        (
            f"Executed: {job.name}",
            f"Reporting node: {reporting_node}",
            f"Start time: {_time(execution.started_at)}",
            f"End time: {_time(execution.finished_at)}",
            f"Success: {str(execution.success).lower()}",
            f"Status: {execution.status.value}",
            f"Attempt: {execution.attempt}",
            f"Node: {execution.node_name}",
            f"Output: {execution.output}",
        )
    )


def template_values(job: Job, execution: Execution, reporting_node: str) -> dict[str, str]:
    """Dkron's template variables, all strings (``Success`` is "true" or "false")."""
    return {
        "Report": report(job, execution, reporting_node),
        "JobName": job.name,
        "ReportingNode": reporting_node,
        "StartTime": _time(execution.started_at),
        "FinishedAt": _time(execution.finished_at),
        "Success": str(execution.success).lower(),
        "NodeName": execution.node_name,
        "Output": execution.output,
    }


def mail_subject(prefix: str, job: Job, execution: Execution) -> str:
    """Dkron's subject: ``[Dkron]Success <job> execution report``."""
    status = "Success" if execution.success else "Failed"
    return f"{prefix}{status} {job.name} execution report"
