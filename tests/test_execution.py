"""Executions and missed ticks: wire form, ids, the status rule, output tails."""

from datetime import UTC, datetime, timedelta

import pytest

from dkron_trio.execution import (
    Execution,
    ExecutionStatus,
    MissedTick,
    MissReason,
    make_execution_id,
    output_tail,
    run_status,
    unix_nanos,
)
from dkron_trio.job import JobStatus, ValidationError

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def ex(
    status: ExecutionStatus = ExecutionStatus.RUNNING, *, group: int = 1, attempt: int = 1
) -> Execution:
    finished = status is not ExecutionStatus.RUNNING
    return Execution(
        id=make_execution_id(T0, "node-a"),
        job_name="job1",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=2) if finished else None,
        success=status is ExecutionStatus.SUCCESS,
        output="hello\n",
        node_name="node-a",
        group=group,
        attempt=attempt,
        scheduled_at=T0,
        fence=42,
        status=status,
        exit_code=0 if finished else None,
    )


def test_running_execution_wire_form_uses_go_zero_time() -> None:
    out = ex().to_json()
    assert out["finished_at"] == "0001-01-01T00:00:00Z"
    assert out["started_at"] == "2024-01-01T00:00:00Z"
    assert out["id"] == "1704067200000000000-node-a"
    assert (out["status"], out["success"], out["fence"], out["exit_code"]) == (
        "running",
        False,
        42,
        None,
    )


@pytest.mark.parametrize("status", list(ExecutionStatus))
def test_round_trip(status: ExecutionStatus) -> None:
    e = ex(status)
    assert Execution.from_json(e.to_json()) == e


def test_dkron_execution_without_our_fields() -> None:
    dkron = {
        "id": "1704067200000000000-node-a",
        "job_name": "job1",
        "started_at": "2024-01-01T00:00:00Z",
        "finished_at": "2024-01-01T00:00:01Z",
        "success": True,
        "output": "ok",
        "node_name": "node-a",
        "group": 1704067200000000000,
        "attempt": 1,
    }
    e = Execution.from_json(dkron)
    assert e.status is ExecutionStatus.SUCCESS
    assert (e.fence, e.scheduled_at, e.exit_code) == (0, None, None)
    running = Execution.from_json({**dkron, "finished_at": "0001-01-01T00:00:00Z"})
    assert running.status is ExecutionStatus.RUNNING
    failed = Execution.from_json({**dkron, "success": False})
    assert failed.status is ExecutionStatus.FAILED


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"job_name": ""}, "job_name"),
        ({"started_at": None}, "started_at"),
        ({"attempt": "1"}, "attempt"),
        ({"success": 1}, "success"),
        ({"status": "exploded"}, "status"),
        ({"finished_at": "soon"}, "finished_at"),
    ],
)
def test_bad_execution_json_names_the_field(patch: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Execution.from_json({**ex().to_json(), **patch})
    assert info.value.field == field


def test_execution_id_is_exact_nanoseconds() -> None:
    t = datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC)
    assert unix_nanos(t) == 9223372036854775000
    assert make_execution_id(T0 + timedelta(microseconds=1), "n") == "1704067200000001000-n"


S, F, R = ExecutionStatus.SUCCESS, ExecutionStatus.FAILED, ExecutionStatus.RUNNING


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        ([], JobStatus.UNTRIGGERED),
        ([(1, 1, R)], JobStatus.UNTRIGGERED),
        ([(1, 1, S), (1, 1, S)], JobStatus.SUCCESS),
        ([(1, 1, F), (1, 1, ExecutionStatus.LOST)], JobStatus.FAILED),
        ([(1, 1, S), (1, 1, F)], JobStatus.PARTIALLY_FAILED),
        ([(1, 1, F), (1, 2, S)], JobStatus.SUCCESS),
        ([(1, 1, S), (1, 1, F), (1, 2, F)], JobStatus.PARTIALLY_FAILED),
        ([(1, 1, S), (2, 1, F), (2, 1, R)], JobStatus.FAILED),
        ([(3, 1, S), (2, 1, F)], JobStatus.SUCCESS),
    ],
)
def test_run_status(runs: list[tuple[int, int, ExecutionStatus]], expected: JobStatus) -> None:
    assert run_status([ex(s, group=g, attempt=a) for g, a, s in runs]) is expected


def test_output_tail_cuts_bytes_and_whole_characters() -> None:
    assert output_tail("abc", 3) == ("abc", False)
    assert output_tail("abcdef", 2) == ("ef", True)
    assert output_tail("a€b", 3) == ("b", True)
    assert output_tail("a€b", 4) == ("€b", True)
    assert output_tail("abc", 0) == ("", True)


def test_missed_tick_positional_and_json() -> None:
    m = MissedTick("job1", T0, MissReason.NO_TARGETS, T0 + timedelta(seconds=1))
    assert m.detail == ""
    assert m.to_json() == {
        "job_name": "job1",
        "scheduled_at": "2024-01-01T00:00:00Z",
        "reason": "no_targets",
        "recorded_at": "2024-01-01T00:00:01Z",
        "detail": "",
    }
