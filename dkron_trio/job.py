"""The job model: Dkron's job JSON, validated, as a frozen value.

`Job.from_json` turns client JSON into a `Job` (Dkron's field names, unknown fields ignored,
``id`` ignored) and validates it; `Job.to_json` gives the wire form back. `Job.from_record`
is the lossless, trusted inverse of `to_json` that stores use (no validation, no recomputing).

Times: input accepts RFC3339 (any offset, up to nanosecond fractions, truncated to
microseconds) and the UI's ``2006-01-02T15:04``; a time without an offset is taken as UTC.
Go's zero time ``0001-01-01T00:00:00Z`` and ``""`` mean "not set". Output is always RFC3339 in
UTC with a ``Z``. Durations are Go duration strings (``"1m30s"``), truncated to milliseconds so
that they survive a round trip through `format_go_duration`.
"""

import functools
import re
import unicodedata
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import Enum
from types import MappingProxyType
from typing import Any, TypeVar

import attrs

from dkron_trio.durations import DurationError, format_go_duration, parse_go_duration
from dkron_trio.executors.registry import (
    UnknownExecutorError,
    known_executors,
    validate_executor_config,
)
from dkron_trio.notify.targets import JobNotify, NotifyFieldError, parse_notify
from dkron_trio.schedule import Schedule, ScheduleError, parse_schedule

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
"""What Go prints for an unset time; accepted on input as "not set"."""

DEFAULT_MISFIRE_GRACE = timedelta(seconds=60)
DEFAULT_RETRY_BACKOFF = timedelta(seconds=5)
DEFAULT_RETENTION_COUNT = 100

_E = TypeVar("_E", bound=Enum)
_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))?"
)

_CANONICAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?Z")
"""`format_time`'s own form, which `datetime.fromisoformat` reads exactly as `_TIME` would."""
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
"""Go's zero time: Dkron writes it for unset times."""


class Concurrency(Enum):
    """What a tick does while the job is still running."""

    ALLOW = "allow"
    FORBID = "forbid"
    REPLACE = "replace"


class MisfirePolicy(Enum):
    """What happens to ticks that were due while nobody could run them."""

    SKIP = "skip"
    RUN_ONCE = "run_once"
    RUN_ALL = "run_all"


class JobStatus(Enum):
    """Outcome of the job's latest run; "" means it never ran (API filter value "untriggered")."""

    UNTRIGGERED = ""
    SUCCESS = "success"
    FAILED = "failed"
    PARTIALLY_FAILED = "partially_failed"
    RUNNING = "running"


class ValidationError(ValueError):
    """Bad job (or execution) input; `field` names the JSON field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def format_time(value: datetime) -> str:
    """RFC3339 in UTC with ``Z``; fractional seconds only when present, trailing zeros cut.
    (`datetime.isoformat` writes the same digits in C: every replicated record's times pass
    through here.)"""
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    text = utc.isoformat()[:-6]  # without "+00:00"
    if utc.microsecond:
        text = text.rstrip("0")
    return text + "Z"


def parse_time(value: object, field: str) -> datetime | None:
    """A time from JSON: RFC3339 or ``2006-01-02T15:04`` (UTC without offset); unset -> None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError(field, "must be an RFC3339 time string")
    if _CANONICAL_TIME.fullmatch(value):  # the form `format_time` writes: parsed in C
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:  # a day or hour out of range: the general path names the field
            pass
        else:
            return None if parsed == _ZERO_TIME else parsed
    m = _TIME.fullmatch(value.strip())
    if m is None:
        raise ValidationError(field, f"invalid time {value!r}, use RFC3339 or 2006-01-02T15:04")
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    micros = int((m.group(7) or "0").ljust(9, "0")[:6])
    offset = timedelta(0)
    if m.group(9):
        sign = -1 if m.group(9) == "-" else 1
        offset = sign * timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
    try:
        local = datetime(year, month, day, hour, minute, second, micros, tzinfo=UTC)
    except ValueError as exc:
        raise ValidationError(field, f"invalid time {value!r}: {exc}") from None
    if (year, month, day, hour, minute, second, micros) == (1, 1, 1, 0, 0, 0, 0):
        return None
    try:
        return local - offset
    except OverflowError:
        raise ValidationError(field, f"time out of range {value!r}") from None


def format_duration(value: timedelta | None) -> str:
    """Go duration text, "" for None."""
    return "" if value is None else format_go_duration(value)


def _frozen_map(value: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only copy. A read-only proxy is kept as is: `attrs.evolve` re-runs converters
    on every field, and copying each map again made every job update slow."""
    if isinstance(value, MappingProxyType):
        return value
    return MappingProxyType(dict(value))


def _frozen_nested(value: Mapping[str, Mapping[str, str]]) -> Mapping[str, Mapping[str, str]]:
    if isinstance(value, MappingProxyType):
        return value
    return MappingProxyType({k: _frozen_map(v) for k, v in value.items()})


def _to_tuple(value: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class Job:
    """A job with every Dkron field (same JSON names) plus dkron-trio's own settings.

    Computed fields (counters, last_*, status, next, dependent_jobs) are maintained by the
    store and the scheduler; on input they are accepted only for Dkron compatibility and the
    store's merge rules decide what survives an update.
    """

    name: str
    displayname: str = ""
    timezone: str = ""
    schedule: str = ""
    owner: str = ""
    owner_email: str = ""
    success_count: int = 0
    error_count: int = 0
    last_success: datetime | None = None
    last_error: datetime | None = None
    disabled: bool = False
    tags: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    metadata: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    retries: int = 0
    dependent_jobs: tuple[str, ...] = attrs.field(default=(), converter=_to_tuple)
    parent_job: str = ""
    processors: Mapping[str, Mapping[str, str]] = attrs.field(
        factory=dict, converter=_frozen_nested
    )
    concurrency: Concurrency = Concurrency.ALLOW
    executor: str = ""
    executor_config: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map)
    status: JobStatus = JobStatus.UNTRIGGERED
    next: datetime | None = None
    ephemeral: bool = False
    starts_at: datetime | None = None
    expires_at: datetime | None = None
    created_at: datetime = EPOCH
    misfire_policy: MisfirePolicy = MisfirePolicy.RUN_ONCE
    misfire_grace: timedelta = DEFAULT_MISFIRE_GRACE
    retry_backoff: timedelta = DEFAULT_RETRY_BACKOFF
    retry_other_node: bool = False
    timeout: timedelta | None = None
    retention_count: int = DEFAULT_RETENTION_COUNT
    retention_age: timedelta | None = None
    notify: JobNotify = attrs.field(factory=JobNotify)
    """The job's own notification targets (`dkron_trio.notify.targets`)."""

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, now: datetime) -> "Job":
        """Parse and validate client JSON; raises ValidationError naming the field.

        ``created_at`` defaults to ``now``; ``next`` is always computed (first run after
        ``now``); ``id`` and unknown fields are ignored.
        """
        job = _decode(obj, now)
        job.validate()
        return attrs.evolve(job, next=job.compute_next(now))

    @classmethod
    def from_record(cls, obj: Mapping[str, Any]) -> "Job":
        """Rebuild a job from its own `to_json` output, trusting it (stores use this)."""
        return cls(
            name=obj["name"],
            displayname=obj["displayname"],
            timezone=obj["timezone"],
            schedule=obj["schedule"],
            owner=obj["owner"],
            owner_email=obj["owner_email"],
            success_count=obj["success_count"],
            error_count=obj["error_count"],
            last_success=record_time(obj["last_success"]),
            last_error=record_time(obj["last_error"]),
            disabled=obj["disabled"],
            tags=obj["tags"],
            metadata=obj["metadata"],
            retries=obj["retries"],
            dependent_jobs=obj["dependent_jobs"],
            parent_job=obj["parent_job"],
            processors=obj["processors"],
            concurrency=Concurrency(obj["concurrency"]),
            executor=obj["executor"],
            executor_config=obj["executor_config"],
            status=JobStatus(obj["status"]),
            next=record_time(obj["next"]),
            ephemeral=obj["ephemeral"],
            starts_at=record_time(obj["starts_at"]),
            expires_at=record_time(obj["expires_at"]),
            created_at=record_time(obj["created_at"]) or EPOCH,
            misfire_policy=MisfirePolicy(obj["misfire_policy"]),
            misfire_grace=parse_go_duration(obj["misfire_grace"]),
            retry_backoff=parse_go_duration(obj["retry_backoff"]),
            retry_other_node=obj["retry_other_node"],
            timeout=_trusted_duration(obj["timeout"]),
            retention_count=obj["retention_count"],
            retention_age=_trusted_duration(obj["retention_age"]),
            notify=JobNotify.from_record(obj.get("notify")),
        )

    def to_json(self) -> dict[str, Any]:
        """Dkron's wire form (plus our fields): ``id`` = name, RFC3339 times, null for unset."""
        return {
            "id": self.name,
            "name": self.name,
            "displayname": self.displayname,
            "timezone": self.timezone,
            "schedule": self.schedule,
            "owner": self.owner,
            "owner_email": self.owner_email,
            "success_count": self.success_count,
            "error_count": self.error_count,
            "last_success": _opt_time(self.last_success),
            "last_error": _opt_time(self.last_error),
            "disabled": self.disabled,
            "tags": dict(self.tags),
            "metadata": dict(self.metadata),
            "retries": self.retries,
            "dependent_jobs": list(self.dependent_jobs),
            "parent_job": self.parent_job,
            "processors": {k: dict(v) for k, v in self.processors.items()},
            "concurrency": self.concurrency.value,
            "executor": self.executor,
            "executor_config": dict(self.executor_config),
            "status": self.status.value,
            "next": _opt_time(self.next),
            "ephemeral": self.ephemeral,
            "starts_at": _opt_time(self.starts_at),
            "expires_at": _opt_time(self.expires_at),
            "created_at": format_time(self.created_at),
            "misfire_policy": self.misfire_policy.value,
            "misfire_grace": format_go_duration(self.misfire_grace),
            "retry_backoff": format_go_duration(self.retry_backoff),
            "retry_other_node": self.retry_other_node,
            "timeout": format_duration(self.timeout),
            "retention_count": self.retention_count,
            "retention_age": format_duration(self.retention_age),
            "notify": self.notify.to_json(),
        }

    def schedule_obj(self) -> Schedule:
        """The parsed schedule; a child job (parent_job set) is never scheduled: ``@manually``."""
        spec = "@manually" if self.parent_job else self.schedule
        return parse_schedule(
            spec,
            timezone=self.timezone,
            job_name=self.name,
            anchor=self.starts_at or self.created_at,
        )

    def compute_next(self, after: datetime) -> datetime | None:
        """First run strictly after ``after`` (not before starts_at, not past expires_at).

        None for child and disabled jobs and for schedules that never fire again.
        """
        if self.parent_job or self.disabled:
            return None
        start = after
        if self.starts_at is not None and self.starts_at - _MICROSECOND > start:
            start = self.starts_at - _MICROSECOND
        due = self.schedule_obj().next_after(start)
        if due is None or (self.expires_at is not None and due > self.expires_at):
            return None
        return due

    def validate(self) -> None:
        """Check every rule; raises ValidationError naming the first bad field."""
        _validate_name(self.name, "name")
        for field in _TIME_FIELDS:
            require_aware(getattr(self, field), field)
        if self.timezone:
            _validate_timezone(self.timezone)
        if self.parent_job == self.name:
            raise ValidationError("parent_job", "the job can not have itself as parent")
        if self.parent_job:
            _validate_name(self.parent_job, "parent_job")
        if self.schedule or not self.parent_job:
            if not self.schedule:
                raise ValidationError("schedule", "is required unless parent_job is set")
            try:
                parse_schedule(
                    self.schedule,
                    timezone=self.timezone,
                    job_name=self.name,
                    anchor=self.starts_at or self.created_at,
                )
            except ScheduleError as exc:
                raise ValidationError("schedule", f"can't parse job schedule: {exc}") from None
        _validate_executor(self.executor, self.executor_config)
        for field, count in (
            ("success_count", self.success_count),
            ("error_count", self.error_count),
            ("retries", self.retries),
        ):
            if count < 0:
                raise ValidationError(field, "must not be negative")
        if self.retention_count < 1:
            raise ValidationError("retention_count", "must be at least 1")
        for field, span in (
            ("misfire_grace", self.misfire_grace),
            ("retry_backoff", self.retry_backoff),
        ):
            if span < timedelta(0):
                raise ValidationError(field, "must not be negative")
        for field, limit in (("timeout", self.timeout), ("retention_age", self.retention_age)):
            if limit is not None and limit <= timedelta(0):
                raise ValidationError(field, "must be positive")
        if (
            self.starts_at is not None
            and self.expires_at is not None
            and self.expires_at < self.starts_at
        ):
            raise ValidationError("expires_at", "must not be before starts_at")


_MICROSECOND = timedelta(microseconds=1)
_NAME_EXTRA = frozenset("0123456789_-")


_TIME_FIELDS = ("last_success", "last_error", "next", "starts_at", "expires_at", "created_at")


def require_aware(value: datetime | None, field: str) -> None:
    """Naive datetimes would silently mean the host's local time: refuse them."""
    if value is not None and value.utcoffset() is None:
        raise ValidationError(field, "must be a timezone-aware datetime")


def _validate_name(name: str, field: str) -> None:
    if not name:
        raise ValidationError(field, "name cannot be empty")
    for ch in name:
        if ch not in _NAME_EXTRA and unicodedata.category(ch) != "Ll":
            raise ValidationError(field, f"name contains illegal character '{ch}'")


def _validate_timezone(tz: str) -> None:
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError("timezone", f"unknown time zone {tz}") from None


def _validate_executor(executor: str, config: Mapping[str, str]) -> None:
    if not executor:
        known = ", ".join(sorted(known_executors()))
        raise ValidationError("executor", f"is required (one of: {known})")
    try:
        problems = validate_executor_config(executor, config)
    except UnknownExecutorError:
        known = ", ".join(sorted(known_executors()))
        raise ValidationError(
            "executor", f"unknown executor {executor!r} (known: {known})"
        ) from None
    if problems:
        key, message = problems[0]
        raise ValidationError(f"executor_config.{key}", message)


def _opt_time(value: datetime | None) -> str | None:
    return None if value is None else format_time(value)


def record_time(value: str | None) -> datetime | None:
    """A time `format_time` wrote: the standard parser, several times cheaper than
    `parse_time` (a new leader decodes every job at once; every replica every execution).
    It also reads other ISO forms: callers that must refuse those compare re-encoded bytes."""
    if not value or value == GO_ZERO_TIME:
        return None
    return datetime.fromisoformat(value)


@functools.lru_cache(maxsize=256)
def _trusted_duration(value: str) -> timedelta | None:
    return parse_go_duration(value) if value else None


def _decode(obj: Mapping[str, Any], now: datetime) -> Job:
    require_aware(now, "now")
    if not isinstance(obj, Mapping):
        raise ValidationError("job", "must be a JSON object")
    r = _Reader(obj)
    return Job(
        name=r.string("name"),
        displayname=r.string("displayname"),
        timezone=r.string("timezone"),
        schedule=r.string("schedule").strip(),
        owner=r.string("owner"),
        owner_email=r.string("owner_email"),
        success_count=r.integer("success_count", 0),
        error_count=r.integer("error_count", 0),
        last_success=parse_time(obj.get("last_success"), "last_success"),
        last_error=parse_time(obj.get("last_error"), "last_error"),
        disabled=r.boolean("disabled", False),
        tags=r.str_map("tags"),
        metadata=r.str_map("metadata"),
        retries=r.integer("retries", 0),
        dependent_jobs=r.str_list("dependent_jobs"),
        parent_job=r.string("parent_job"),
        processors=r.processors("processors"),
        concurrency=r.enum("concurrency", Concurrency, Concurrency.ALLOW, _CONCURRENCY_HINT),
        executor=r.string("executor"),
        executor_config=r.str_map("executor_config"),
        status=r.enum("status", JobStatus, JobStatus.UNTRIGGERED, _STATUS_HINT),
        ephemeral=r.boolean("ephemeral", False),
        starts_at=parse_time(obj.get("starts_at"), "starts_at"),
        expires_at=parse_time(obj.get("expires_at"), "expires_at"),
        created_at=parse_time(obj.get("created_at"), "created_at") or now.astimezone(UTC),
        misfire_policy=r.enum(
            "misfire_policy", MisfirePolicy, MisfirePolicy.RUN_ONCE, _MISFIRE_HINT
        ),
        misfire_grace=_or_default(r.duration("misfire_grace"), DEFAULT_MISFIRE_GRACE),
        retry_backoff=_or_default(r.duration("retry_backoff"), DEFAULT_RETRY_BACKOFF),
        retry_other_node=r.boolean("retry_other_node", False),
        timeout=r.duration("timeout"),
        retention_count=r.integer("retention_count", DEFAULT_RETENTION_COUNT),
        retention_age=r.duration("retention_age"),
        notify=r.notify("notify"),
    )


def _or_default(value: timedelta | None, default: timedelta) -> timedelta:
    return default if value is None else value


_STATUS_HINT = 'invalid status, use "", "untriggered", "success", "failed" or "partially_failed"'
_CONCURRENCY_HINT = 'invalid concurrency policy value, use "allow", "forbid" or "replace"'
_MISFIRE_HINT = 'invalid misfire policy, use "skip", "run_once" or "run_all"'


@attrs.frozen
class _Reader:
    """Typed access to JSON fields; null (or absence) gives the default, like Go's decoder."""

    _obj: Mapping[str, Any]

    def string(self, key: str) -> str:
        value = self._obj.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ValidationError(key, "must be a string")
        return value

    def integer(self, key: str, default: int) -> int:
        value = self._obj.get(key)
        if value is None:
            return default
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValidationError(key, "must be an integer")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._obj.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ValidationError(key, "must be true or false")
        return value

    def str_map(self, key: str) -> dict[str, str]:
        value = self._obj.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValidationError(key, "must be an object of strings")
        for k, v in value.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValidationError(f"{key}.{k}", "must be a string")
        return dict(value)

    def processors(self, key: str) -> dict[str, dict[str, str]]:
        value = self._obj.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValidationError(key, "must be an object of objects")
        out: dict[str, dict[str, str]] = {}
        for name, config in value.items():
            out[name] = _Reader({f"{key}.{name}": config}).str_map(f"{key}.{name}")
        return out

    def notify(self, key: str) -> JobNotify:
        try:
            return parse_notify(self._obj.get(key), key)
        except NotifyFieldError as exc:
            raise ValidationError(exc.field, exc.message) from None

    def str_list(self, key: str) -> tuple[str, ...]:
        value = self._obj.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError(key, "must be a list of strings")
        return tuple(value)

    def enum(self, key: str, kind: type[_E], default: _E, hint: str) -> _E:
        value = self._obj.get(key)
        if value is None or value == "" or (kind is JobStatus and value == "untriggered"):
            return default
        try:
            return kind(value)
        except ValueError:
            raise ValidationError(key, hint) from None

    def duration(self, key: str) -> timedelta | None:
        value = self._obj.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ValidationError(key, 'must be a Go duration string such as "90s"')
        try:
            parsed = parse_go_duration(value)
        except DurationError as exc:
            raise ValidationError(key, str(exc)) from None
        return timedelta(milliseconds=parsed // timedelta(milliseconds=1))
