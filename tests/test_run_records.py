"""run_records: unique start stamps, and the records of an attempt's start and outcome."""

from datetime import UTC, datetime, timedelta

from dkron_trio.execution import ExecutionStatus
from dkron_trio.executors.base import ExecutionResult
from dkron_trio.executors.output import OutputBuffer
from dkron_trio.run_records import START_MEMORY, StartStamps, new_attempt, outcome, started_now

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
US = timedelta(microseconds=1)


def test_stamps_never_repeat_within_the_memory_even_out_of_order() -> None:
    stamps = StartStamps()
    ahead = T0 + timedelta(seconds=1)  # planned ahead of now
    given = [stamps.stamp(ahead, T0), stamps.stamp(T0, T0), stamps.stamp(ahead, T0)]
    given.append(stamps.stamp(T0, T0))
    assert given == [ahead, T0, ahead + US, T0 + US]


def test_stamps_older_than_the_memory_are_forgotten() -> None:
    stamps = StartStamps()
    assert stamps.stamp(T0, T0) == T0
    later = T0 + START_MEMORY + US
    assert stamps.stamp(later, later) == later  # trims T0
    assert stamps.stamp(T0, later) == T0  # no longer remembered: given as asked


def test_attempt_start_and_outcome_records() -> None:
    planned = new_attempt("backup", T0, 2, 7, T0, "node-a")
    assert (planned.job_name, planned.attempt, planned.group, planned.fence) == ("backup", 2, 7, 7)
    assert planned.status is ExecutionStatus.RUNNING and planned.finished_at is None
    started = started_now(planned, T0 + 3 * US)
    assert started.started_at == T0 + 3 * US and started.id == planned.id
    end = T0 + timedelta(seconds=2)
    done = outcome(started, ExecutionResult(False, "boom", 3, "exit 3"), OutputBuffer(), end)
    assert (done.status, done.success, done.output, done.exit_code, done.finished_at) == (
        ExecutionStatus.FAILED,
        False,
        "boom",
        3,
        end,
    )
    printed = OutputBuffer()
    printed.append(b"half way")
    cancelled = outcome(started, None, printed, end)
    assert cancelled.status is ExecutionStatus.CANCELLED
    assert cancelled.output == "half way\nexecution cancelled"
