"""The execution records of a run, as `runs.RunManager` writes them: new attempts with
unique start times, the record as the executor starts, and the record of the outcome.

Pure: the time comes in as ``now``.
"""

from collections import deque
from datetime import datetime, timedelta

import attrs

from dkron_trio.execution import Execution, ExecutionStatus, make_execution_id
from dkron_trio.executors.base import ExecutionResult
from dkron_trio.executors.output import OutputBuffer

START_MEMORY = timedelta(seconds=10)
"""How long a start is remembered to keep ids unique: far beyond how far ahead ticks are
planned, so a start it forgets lies in the past of every start still to come."""


@attrs.define
class StartStamps:
    """Start times for new executions, each distinct from every one given out lately:
    execution ids (start + node) must not repeat. Starts planned ahead lie in the future,
    so starts are not monotonic: every start of the last `START_MEMORY` is remembered."""

    _given: set[datetime] = attrs.field(factory=set)
    _order: deque[datetime] = attrs.field(factory=deque)
    """The starts of `_given`, in the order given."""

    def stamp(self, at: datetime, now: datetime) -> datetime:
        """``at``, bumped a microsecond at a time past the starts already given out."""
        start = at
        while start in self._given:
            start += timedelta(microseconds=1)
        self._given.add(start)
        self._order.append(start)
        oldest = now - START_MEMORY
        while self._order[0] < oldest:  # roughly in order: trim the front
            self._given.discard(self._order.popleft())
        return start


def new_attempt(  # noqa: PLR0917
    job_name: str,
    scheduled_at: datetime,
    attempt: int,
    group: int,
    started: datetime,
    node: str,
) -> Execution:
    """The running record of an attempt about to be stored (fenced by its group until a
    plan's log index fences it)."""
    return Execution(
        id=make_execution_id(started, node),
        job_name=job_name,
        started_at=started,
        finished_at=None,
        success=False,
        output="",
        node_name=node,
        group=group,
        attempt=attempt,
        scheduled_at=scheduled_at,
        fence=group,
        status=ExecutionStatus.RUNNING,
        exit_code=None,
    )


def started_now(execution: Execution, now: datetime) -> Execution:
    """The record as its executor starts: ``started_at`` is when it really began (a planned
    start is only when it was meant to), so lateness can be read off the record."""
    return attrs.evolve(execution, started_at=now)


def outcome(
    execution: Execution, result: ExecutionResult | None, output: OutputBuffer, now: datetime
) -> Execution:
    """The finished record: ``result`` None means cancelled (``output`` holds what it
    printed until then; a result carries its own)."""
    if result is None:
        return attrs.evolve(
            execution,
            finished_at=now,
            output=output.text() + "\nexecution cancelled",
            status=ExecutionStatus.CANCELLED,
        )
    return attrs.evolve(
        execution,
        finished_at=now,
        success=result.success,
        output=result.output,
        status=ExecutionStatus.SUCCESS if result.success else ExecutionStatus.FAILED,
        exit_code=result.exit_code,
    )
