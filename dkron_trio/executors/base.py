"""What every executor receives and returns, and the interface the agent calls.

Kept free of trio and IO so the pure job model and the agent can share these types.
"""

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
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
