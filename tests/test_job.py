"""The job model: Dkron's JSON in and out, validation, computed next, round trips."""

import json
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from dkron_trio.job import (
    Concurrency,
    Job,
    JobStatus,
    MisfirePolicy,
    ValidationError,
    format_time,
    parse_time,
)
from dkron_trio.schedule import ScheduleKind

NOW = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)

DKRON_FIELDS = [
    "id",
    "name",
    "displayname",
    "timezone",
    "schedule",
    "owner",
    "owner_email",
    "success_count",
    "error_count",
    "last_success",
    "last_error",
    "disabled",
    "tags",
    "metadata",
    "retries",
    "dependent_jobs",
    "parent_job",
    "processors",
    "concurrency",
    "executor",
    "executor_config",
    "status",
    "next",
    "ephemeral",
    "starts_at",
    "expires_at",
]


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "job1",
        "schedule": "@every 10s",
        "executor": "shell",
        "executor_config": {"command": "echo hi"},
    }
    base.update(fields)
    return base


def parse(**fields: Any) -> Job:
    return Job.from_json(body(**fields), now=NOW)


def error(**fields: Any) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        parse(**fields)
    return info.value


# --- defaults and wire form -----------------------------------------------------------------


def test_minimal_job_gets_defaults() -> None:
    job = parse()
    assert job.created_at == NOW
    assert job.concurrency is Concurrency.ALLOW
    assert job.status is JobStatus.UNTRIGGERED
    assert job.misfire_policy is MisfirePolicy.RUN_ONCE
    assert job.misfire_grace == timedelta(seconds=60)
    assert job.retry_backoff == timedelta(seconds=5)
    assert (job.timeout, job.retention_age, job.retention_count) == (None, None, 100)
    assert job.next == NOW + timedelta(seconds=10)


def test_to_json_has_every_dkron_field_first_and_id_is_name() -> None:
    out = parse().to_json()
    assert list(out)[: len(DKRON_FIELDS)] == DKRON_FIELDS
    assert out["id"] == "job1"
    assert out["last_success"] is None
    assert out["next"] == "2024-03-01T12:00:10Z"
    assert out["created_at"] == "2024-03-01T12:00:00Z"
    assert out["misfire_grace"] == "1m0s"
    assert out["timeout"] == ""
    json.dumps(out)


def test_id_and_unknown_fields_are_ignored() -> None:
    job = parse(id="other", command="legacy", shell=True, environment_variables=["A=1"])
    assert job.name == "job1"


def test_null_means_default() -> None:
    job = parse(tags=None, retries=None, disabled=None, displayname=None, concurrency=None)
    assert (dict(job.tags), job.retries, job.disabled, job.displayname) == ({}, 0, False, "")


def test_round_trip_through_record_is_lossless() -> None:
    job = parse(
        displayname="Job One",
        timezone="America/New_York",
        tags={"role": "web:2"},
        metadata={"team": "a"},
        processors={"log": {"forward": "true"}},
        retries=3,
        concurrency="forbid",
        starts_at="2024-03-02T10:00:00.123456Z",
        expires_at="2030-01-01T00:00:00+01:00",
        last_error="2024-01-01T00:00:00Z",
        status="failed",
        misfire_policy="run_all",
        misfire_grace="90s",
        retry_backoff="1.5s",
        retry_other_node=True,
        timeout="1h",
        retention_count=7,
        retention_age="72h",
        ephemeral=True,
    )
    assert Job.from_record(json.loads(json.dumps(job.to_json()))) == job
    assert Job.from_json(job.to_json(), now=NOW) == job


def test_job_values_are_frozen() -> None:
    job = parse(tags={"a": "b"})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        job.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        job.tags["a"] = "c"  # type: ignore[index]


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["job1", "a_b-c", "ñandú", "0", "ελληνικά"])
def test_valid_names(name: str) -> None:
    assert parse(name=name).name == name


@pytest.mark.parametrize(("name", "char"), [("Job", "J"), ("a.b", "."), ("a b", " "), ("a/b", "/")])
def test_illegal_name_character_is_named(name: str, char: str) -> None:
    err = error(name=name)
    assert err.field == "name"
    assert err.message == f"name contains illegal character '{char}'"
    assert str(err) == f"name: name contains illegal character '{char}'"


def test_name_is_required() -> None:
    assert error(name="").field == "name"
    with pytest.raises(ValidationError):
        Job.from_json({"schedule": "@every 1s", "executor": "shell"}, now=NOW)


def test_timezone_must_exist() -> None:
    assert parse(timezone="Europe/Madrid").timezone == "Europe/Madrid"
    err = error(timezone="Mars/Olympus")
    assert (err.field, err.message) == ("timezone", "unknown time zone Mars/Olympus")


def test_schedule_rules() -> None:
    err = error(schedule="every day")
    assert err.field == "schedule"
    assert err.message.startswith("can't parse job schedule")
    assert error(schedule="").field == "schedule"


def test_child_jobs_may_omit_the_schedule() -> None:
    child = parse(schedule="", parent_job="parent")
    assert child.next is None
    assert child.schedule_obj().kind is ScheduleKind.MANUAL
    assert error(schedule="bad", parent_job="parent").field == "schedule"


def test_parent_cannot_be_itself() -> None:
    err = error(parent_job="job1")
    assert (err.field, err.message) == ("parent_job", "the job can not have itself as parent")


def test_concurrency_values() -> None:
    assert parse(concurrency="").concurrency is Concurrency.ALLOW
    assert parse(concurrency="replace").concurrency is Concurrency.REPLACE
    err = error(concurrency="queue")
    assert err.field == "concurrency"
    assert '"allow", "forbid" or "replace"' in err.message


def test_executor_rules() -> None:
    assert error(executor="").field == "executor"
    assert "unknown executor 'kafka'" in error(executor="kafka").message
    err = error(executor_config={"command": "x", "timeout": "soon"})
    assert err.field == "executor_config.timeout"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", 5),
        ("retries", "3"),
        ("retries", True),
        ("success_count", 1.5),
        ("disabled", "yes"),
        ("tags", ["a"]),
        ("metadata", {"a": 1}),
        ("executor_config", "echo"),
        ("processors", {"files": "x"}),
        ("dependent_jobs", "a"),
        ("starts_at", 1700000000),
        ("misfire_grace", 60),
        ("status", "great"),
        ("misfire_policy", "sometimes"),
    ],
)
def test_wrong_types_name_the_field(field: str, value: object) -> None:
    assert error(**{field: value}).field.split(".")[0] == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retries", -1),
        ("error_count", -2),
        ("retention_count", 0),
        ("timeout", "0s"),
        ("retention_age", "-1h"),
        ("misfire_grace", "-1s"),
    ],
)
def test_out_of_range_values(field: str, value: object) -> None:
    assert error(**{field: value}).field == field


def test_expiry_before_start_is_refused() -> None:
    err = error(starts_at="2024-05-01T00:00:00Z", expires_at="2024-04-01T00:00:00Z")
    assert err.field == "expires_at"


# --- times and durations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, tzinfo=UTC)),
        ("2024-03-01T10:00:00+02:00", datetime(2024, 3, 1, 8, tzinfo=UTC)),
        ("2024-03-01T10:00:00.123456789Z", datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2024-03-01T10:00", datetime(2024, 3, 1, 10, tzinfo=UTC)),
        ("2024-03-01T10:00:05", datetime(2024, 3, 1, 10, 0, 5, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        (None, None),
    ],
)
def test_time_input_forms(text: str | None, expected: datetime | None) -> None:
    assert parse_time(text, "starts_at") == expected


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01T00:00:00Z", "2024-03-01", "12:00"])
def test_bad_times_name_the_field(text: str) -> None:
    assert error(starts_at=text).field == "starts_at"


def test_time_output_is_utc_with_z() -> None:
    utc = datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)
    berlin = utc.astimezone(zoneinfo.ZoneInfo("Europe/Berlin"))
    assert format_time(berlin) == "2024-03-01T10:00:00.5Z"
    assert format_time(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"


def test_durations_are_go_strings_truncated_to_milliseconds() -> None:
    job = parse(misfire_grace="0s", retry_backoff="250.5ms", timeout="1h30m", retention_age="")
    assert job.misfire_grace == timedelta(0)
    assert job.retry_backoff == timedelta(milliseconds=250)
    assert job.timeout == timedelta(minutes=90)
    assert job.retention_age is None
    assert job.to_json()["timeout"] == "1h30m0s"
    assert error(timeout="forever").field == "timeout"


# --- computed next --------------------------------------------------------------------------


def test_next_honours_starts_at_and_expires_at() -> None:
    start = NOW + timedelta(days=1, seconds=3)
    assert parse(starts_at=format_time(start)).next == start
    assert parse(schedule="0 0 * * * *", starts_at="2024-03-05T10:30:00Z").next == datetime(
        2024, 3, 5, 11, tzinfo=UTC
    )
    assert parse(expires_at="2024-03-01T12:00:05Z").next is None


def test_next_is_none_when_nothing_will_run() -> None:
    assert parse(schedule="@manually").next is None
    assert parse(disabled=True).next is None
    assert parse(schedule="@at 2020-01-01T00:00:00Z").next is None


def test_next_uses_the_timezone_for_descriptors() -> None:
    job = parse(schedule="@daily", timezone="America/New_York")
    assert job.next == datetime(2024, 3, 2, 5, tzinfo=UTC)


def test_every_is_anchored_to_created_at() -> None:
    job = parse(created_at="2024-03-01T11:59:57Z")
    assert job.next == datetime(2024, 3, 1, 12, 0, 7, tzinfo=UTC)
    assert job.compute_next(NOW + timedelta(seconds=30)) == NOW + timedelta(seconds=37)


def test_validate_checks_evolved_jobs() -> None:
    job = parse()
    with pytest.raises(ValidationError):
        attrs.evolve(job, retries=-1).validate()


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        Job.from_json(body(), now=NOW.replace(tzinfo=None))
    assert info.value.field == "now"


def test_status_accepts_the_filter_word_untriggered() -> None:
    assert parse(status="untriggered").status is JobStatus.UNTRIGGERED
    assert parse(status="partially_failed").status is JobStatus.PARTIALLY_FAILED
