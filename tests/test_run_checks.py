"""The run-promise checker finds duplicates and unexplained ticks, and nothing else."""

from datetime import timedelta

import attrs

from dkron_trio.execution import Execution, ExecutionStatus, MissedTick, MissReason
from dkron_trio.job import Job
from dkron_trio.run_checks import ViolationKind, check_runs
from tests.store.helpers import T0, execution


def _job() -> Job:
    return Job.from_json(
        {
            "name": "a",
            "schedule": "@every 1s",
            "executor": "shell",
            "executor_config": {"command": "true"},
            "starts_at": T0.isoformat().replace("+00:00", "Z"),
        },
        now=T0,
    )


def _ex(second: int, node: str = "n1", attempt: int = 1) -> Execution:
    e = execution("a", second, ExecutionStatus.SUCCESS)
    return attrs.evolve(
        e,
        id=f"{second}-{node}-{attempt}",
        scheduled_at=T0 + timedelta(seconds=second),
        node_name=node,
        attempt=attempt,
    )


def test_complete_records_pass() -> None:
    runs = [_ex(s) for s in (1, 2, 4)]
    missed = [MissedTick("a", T0 + timedelta(seconds=3), MissReason.MISFIRE, T0)]
    assert check_runs(_job(), runs, missed, until=T0 + timedelta(seconds=4)) == []


def test_a_gap_and_a_double_run_are_found() -> None:
    runs = [_ex(1), _ex(1), _ex(3), _ex(3, node="n2")]
    found = check_runs(_job(), runs, [], until=T0 + timedelta(seconds=3), max_targets=1)
    kinds = sorted((v.kind.value, v.scheduled_at.second) for v in found)
    assert kinds == [
        (ViolationKind.DUPLICATE.value, 1),
        (ViolationKind.DUPLICATE.value, 1),
        (ViolationKind.DUPLICATE.value, 3),
        (ViolationKind.UNEXPLAINED.value, 2),
    ]


def test_a_retry_is_not_a_duplicate() -> None:
    runs = [_ex(1), _ex(1, attempt=2)]
    assert check_runs(_job(), runs, [], until=T0 + timedelta(seconds=1), max_targets=1) == []
