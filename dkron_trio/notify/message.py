"""What a notification says about a finished execution: its events, template values, subject.

Pure: the sender (service.py) passes the job, the execution, the job's earlier executions
and this node's name.
"""

from collections.abc import Iterable
from datetime import datetime

from dkron_trio.execution import Execution, ExecutionStatus, run_status
from dkron_trio.job import Job, JobStatus
from dkron_trio.notify.targets import NotifyEvent
from dkron_trio.planner import should_retry


def is_final(job: Job, execution: Execution) -> bool:
    """Whether no further attempt follows (Dkron notifies after the final attempt only)."""
    if not execution.status.finished:
        return False
    if execution.status is ExecutionStatus.CANCELLED:
        return True
    return not should_retry(job, execution.attempt, execution.success)


def previous_status(execution: Execution, history: Iterable[Execution]) -> JobStatus:
    """The job's status before ``execution``'s run: the outcome of the latest earlier run
    (lower group) in ``history``; UNTRIGGERED if there is none."""
    return run_status(ex for ex in history if ex.group < execution.group)


def run_events(execution: Execution, previous: JobStatus | None) -> frozenset[NotifyEvent]:
    """The events of a final attempt; ``previous`` is the job's status before this run (None:
    unknown, so no state change is reported). A never-run job counts as succeeding."""
    ok = execution.status is ExecutionStatus.SUCCESS
    events = {NotifyEvent.SUCCESS if ok else NotifyEvent.FAILURE}
    if previous is not None:
        was_ok = previous in {JobStatus.SUCCESS, JobStatus.UNTRIGGERED}
        if ok != was_ok:
            events.add(NotifyEvent.STATE_CHANGE)
    if execution.status is ExecutionStatus.FAILED and execution.attempt > 1:
        events.add(NotifyEvent.RETRY_EXHAUSTED)
    return frozenset(events)


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


def template_values(
    job: Job,
    execution: Execution,
    reporting_node: str,
    events: Iterable[NotifyEvent] = (),
) -> dict[str, str]:
    """Dkron's template variables, all strings (``Success`` is "true" or "false"), and
    ``Events`` (comma-separated, in `NotifyEvent` order)."""
    order = list(NotifyEvent)
    return {
        "Report": report(job, execution, reporting_node),
        "JobName": job.name,
        "ReportingNode": reporting_node,
        "StartTime": _time(execution.started_at),
        "FinishedAt": _time(execution.finished_at),
        "Success": str(execution.success).lower(),
        "NodeName": execution.node_name,
        "Output": execution.output,
        "Events": ",".join(e.value for e in sorted(set(events), key=order.index)),
    }


def mail_subject(prefix: str, job: Job, execution: Execution) -> str:
    """Dkron's subject: ``[Dkron]Success <job> execution report``."""
    status = "Success" if execution.success else "Failed"
    return f"{prefix}{status} {job.name} execution report"
