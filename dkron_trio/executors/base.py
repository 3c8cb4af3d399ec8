"""What every executor receives and returns, and the interface the agent calls.

Kept free of trio and IO so the pure job model and the agent can share these types.
"""

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Protocol

import attrs

OutputCallback = Callable[[bytes], None]
"""Receives output chunks as they arrive (stdout and stderr interleaved, raw bytes)."""


@attrs.frozen
class ExecutionRequest:
    """One attempt to run, as dispatched to an agent (DESIGN.md §5, the run protocol)."""

    job_name: str
    execution_id: str
    scheduled_at: datetime
    attempt: int
    fence: int
    executor_config: Mapping[str, str]
    timeout: timedelta | None = None
    """Job-level timeout; the executor's own `timeout` applies too, whichever is shorter."""

    def effective_timeout(self, executor_timeout: timedelta | None) -> timedelta | None:
        """The shorter of the job-level and the executor's timeout; None when neither is set."""
        present = [t for t in (self.timeout, executor_timeout) if t is not None]
        return min(present) if present else None

    def identity(self) -> dict[str, str]:
        """What tells the job which attempt it is, keyed by environment variable name.

        The shell executor sets these variables; the http executor sends them as headers
        (DKRON_JOB_NAME -> X-Dkron-Job-Name). The fence lets a job reject a stale attempt.
        """
        scheduled = self.scheduled_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return {
            "DKRON_JOB_NAME": self.job_name,
            "DKRON_EXECUTION_ID": self.execution_id,
            "DKRON_SCHEDULED_AT": scheduled,
            "DKRON_ATTEMPT": str(self.attempt),
            "DKRON_FENCE": str(self.fence),
        }


@attrs.frozen
class ExecutionResult:
    """How an attempt ended. `output` is the capped tail, with the error line first on failure."""

    success: bool
    output: str
    exit_code: int | None
    error: str


class Executor(Protocol):
    """Runs one attempt. Cancelling the caller's scope stops everything it started first."""

    async def run(self, req: ExecutionRequest, on_output: OutputCallback) -> ExecutionResult: ...
