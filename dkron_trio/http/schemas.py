"""The API's JSON shapes, defined once: field tables that give both the OpenAPI schemas and
the checks the handlers run on request bodies.

A request body is first checked against the JSON Schema generated here (types, enums), so a
wrong type is a 400 naming the field exactly as the OpenAPI document describes it; the job
model then checks the meaning (schedule, timezone, name characters, executor config). Enum
values come from the model's Enum classes and defaults from `Job`'s own defaults, so nothing
here is a second hand-kept copy of the model.
"""

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

import attrs

from dkron_trio.execution import ExecutionStatus, MissReason
from dkron_trio.job import Concurrency, Job, JobStatus, MisfirePolicy, ValidationError
from dkron_trio.notify.targets import MAX_TARGETS, NotifyEvent


class FieldType(Enum):
    """The JSON forms a field can take, each with its JSON Schema."""

    STRING = "string"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    TIME = "time"
    DURATION = "duration"
    STRING_MAP = "string_map"
    STRING_LIST = "string_list"
    PROCESSORS = "processors"
    NOTIFY = "notify"
    OBJECT = "object"

    def schema(self) -> dict[str, Any]:
        return dict(_TYPE_SCHEMAS[self])


_STRING_MAP: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
_EVENTS: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "enum": [event.value for event in NotifyEvent]},
    "minItems": 1,
    "description": 'Events this target is sent on (default ["failure"]): failure, success, '
    "state_change (the outcome differs from the previous run's; a job that never ran counts "
    "as succeeding) and retry_exhausted (failed after at least one retry).",
}
_NOTIFY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "webhooks": {
            "type": "array",
            "maxItems": MAX_TARGETS,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["url"],
                "properties": {
                    "url": {"type": "string", "format": "uri", "description": "http(s) URL."},
                    "on": _EVENTS,
                    "payload": {
                        "type": "string",
                        "description": "Template with {{.Name}} placeholders (JobName, "
                        "Success, Output, Events, ...), JSON-escaped when it is a JSON "
                        'document; "" = a JSON summary of the run.',
                    },
                    "headers": _STRING_MAP,
                },
            },
        },
        "emails": {
            "type": "array",
            "maxItems": MAX_TARGETS,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["to"],
                "properties": {
                    "to": {
                        "type": "array",
                        "items": {"type": "string", "format": "email"},
                        "minItems": 1,
                    },
                    "on": _EVENTS,
                    "payload": {
                        "type": "string",
                        "description": 'Body template; "" = {{.Report}}. Sent through the '
                        "agent's mail-host.",
                    },
                },
            },
        },
    },
}
_TYPE_SCHEMAS: Mapping[FieldType, Mapping[str, Any]] = {
    FieldType.STRING: {"type": "string"},
    FieldType.INTEGER: {"type": "integer"},
    FieldType.BOOLEAN: {"type": "boolean"},
    FieldType.TIME: {"type": "string", "format": "date-time"},
    FieldType.DURATION: {"type": "string", "format": "go-duration"},
    FieldType.STRING_MAP: _STRING_MAP,
    FieldType.STRING_LIST: {"type": "array", "items": {"type": "string"}},
    FieldType.PROCESSORS: {"type": "object", "additionalProperties": _STRING_MAP},
    FieldType.NOTIFY: _NOTIFY,
    FieldType.OBJECT: {"type": "object"},
}


@attrs.frozen
class Field:
    """One property of an object schema."""

    name: str
    kind: FieldType
    description: str
    read_only: bool = False
    nullable: bool = False
    """May be null in responses (an unset time, no exit code yet)."""
    choices: type[Enum] | None = None
    input_aliases: tuple[str, ...] = ()
    """Further values accepted on input for this enum (e.g. status "untriggered")."""
    example: object = None

    def schema(self, *, accept_null: bool, default: object = None) -> dict[str, Any]:
        out = self.kind.schema()
        if self.choices is not None:
            out["enum"] = [member.value for member in self.choices]
        if accept_null and "enum" in out:
            out["enum"] += [v for v in ("", *self.input_aliases) if v not in out["enum"]]
        if accept_null or self.nullable:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"].append(None)
        out["description"] = self.description
        if self.read_only:
            out["readOnly"] = True
        if default is not None:
            out["default"] = default
        if self.example is not None:
            out["examples"] = [self.example]
        return out


@attrs.frozen
class ObjectSchema:
    """A named object schema (an OpenAPI component)."""

    name: str
    description: str
    fields: tuple[Field, ...]
    required: tuple[str, ...] = ()
    accept_null: bool = False
    """Input schema: every property also accepts null, meaning "not given" (Go's decoder does
    the same), and an enum also accepts "" for its default (Dkron's "" = allow)."""
    defaults: Mapping[str, object] = attrs.field(factory=dict)

    def json_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "object",
            "description": self.description,
            "properties": {
                f.name: f.schema(accept_null=self.accept_null, default=self.defaults.get(f.name))
                for f in self.fields
            },
        }
        if self.required:
            out["required"] = list(self.required)
        return out

    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]


# ---- checking values against a JSON Schema ----------------------------------------------

_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a JSON object",
    "array": "a JSON array",
    "null": "null",
}


def _is_type(value: object, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, Mapping)
    if kind == "array":
        return isinstance(value, list)
    if kind == "null":
        return value is None
    raise ValueError(f"unsupported JSON Schema type {kind!r}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def check(
    schema: Mapping[str, Any],
    value: object,
    path: str,
    components: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Check ``value`` against ``schema``; raise ValidationError naming the JSON path.

    Supports the subset this API's schemas use: ``$ref`` to a component, ``type`` (one or a
    list), ``enum``, ``properties``, ``required``, ``additionalProperties`` and ``items``.
    """
    ref = schema.get("$ref")
    if ref is not None:
        if components is None:
            raise ValueError(f"cannot resolve {ref} without components")
        check(components[ref.rsplit("/", 1)[-1]], value, path, components)
        return
    kinds = schema.get("type")
    if kinds is not None:
        allowed = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_is_type(value, k) for k in allowed):
            words = " or ".join(_TYPE_WORDS[k] for k in allowed if k != "null")
            raise ValidationError(path or "body", f"must be {words}")
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(f'"{v}"' for v in schema["enum"] if v is not None)
        raise ValidationError(path or "body", f"must be one of {choices}")
    if isinstance(value, Mapping):
        _check_object(schema, value, path, components)
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            check(schema["items"], item, f"{path}[{index}]", components)


def _check_object(
    schema: Mapping[str, Any],
    value: Mapping[str, Any],
    path: str,
    components: Mapping[str, Mapping[str, Any]] | None,
) -> None:
    for key in schema.get("required", ()):
        if value.get(key) is None:
            raise ValidationError(_join(path, key), "is required")
    properties: Mapping[str, Any] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            check(properties[key], item, _join(path, key), components)
        elif extra is False:
            raise ValidationError(_join(path, key), "is not a known field")
        elif isinstance(extra, Mapping):
            check(extra, item, _join(path, key), components)


# ---- the API's objects -------------------------------------------------------------------

_JOB_FIELDS = (
    Field("id", FieldType.STRING, "Read-only copy of name (ignored on input).", read_only=True),
    Field(
        "name",
        FieldType.STRING,
        "Unique job name: lower-case (Unicode) letters, digits, '_' and '-' only.",
        example="job1",
    ),
    Field("displayname", FieldType.STRING, "Name shown instead of name; searched by q."),
    Field(
        "timezone",
        FieldType.STRING,
        'IANA time zone the schedule runs in, for every schedule form; "" means UTC.',
        example="Europe/Berlin",
    ),
    Field(
        "schedule",
        FieldType.STRING,
        "6-field cron (seconds first) or 5-field crontab, @yearly/@monthly/@weekly/@daily/"
        "@hourly/@minutely, '@every <duration>' (anchored to starts_at or creation), "
        "'@at <RFC3339>' or '@manually'. Required unless parent_job is set.",
        example="@every 10s",
    ),
    Field("owner", FieldType.STRING, "Owner of the job (free text).", example="Platform Team"),
    Field("owner_email", FieldType.STRING, "Owner's e-mail address.", example="a@example.com"),
    Field(
        "success_count",
        FieldType.INTEGER,
        "Successful executions (computed; an update keeps the larger value).",
        read_only=True,
    ),
    Field(
        "error_count",
        FieldType.INTEGER,
        "Failed executions (computed; an update keeps the larger value).",
        read_only=True,
    ),
    Field(
        "last_success",
        FieldType.TIME,
        "When the last successful execution finished.",
        read_only=True,
        nullable=True,
    ),
    Field(
        "last_error",
        FieldType.TIME,
        "When the last failed execution finished.",
        read_only=True,
        nullable=True,
    ),
    Field("disabled", FieldType.BOOLEAN, "A disabled job is not scheduled."),
    Field(
        "tags",
        FieldType.STRING_MAP,
        'Target node selector: "key": "value" or "value:count"; empty = every node.',
        example={"dkron_server": "true:1"},
    ),
    Field(
        "metadata",
        FieldType.STRING_MAP,
        "Free labels; filter the job list with metadata[key]=value.",
        example={"user": "12345"},
    ),
    Field("retries", FieldType.INTEGER, "Extra attempts after a failed one."),
    Field(
        "dependent_jobs",
        FieldType.STRING_LIST,
        "Children of this job (maintained from their parent_job; input ignored).",
        read_only=True,
    ),
    Field(
        "parent_job",
        FieldType.STRING,
        "Run after this job's successful run instead of on a schedule; must exist.",
    ),
    Field(
        "processors",
        FieldType.PROCESSORS,
        "Processor plugins applied to each finished execution, keyed by plugin name.",
    ),
    Field(
        "concurrency",
        FieldType.STRING,
        'What a new run does while one is running: "allow", "forbid" (skip it; manual '
        'runs too unless ?force=true) or "replace" (cancel the running one).',
        choices=Concurrency,
    ),
    Field("executor", FieldType.STRING, 'Executor plugin: "shell" or "http".', example="shell"),
    Field(
        "executor_config",
        FieldType.STRING_MAP,
        "Executor parameters, all strings.",
        example={"command": "date"},
    ),
    Field(
        "status",
        FieldType.STRING,
        'Outcome of the latest run ("" = never ran; "untriggered" means the same on input).',
        read_only=True,
        choices=JobStatus,
        input_aliases=("untriggered",),
    ),
    Field(
        "next",
        FieldType.TIME,
        "Next scheduled run (null when it never runs again); ignored on input.",
        read_only=True,
        nullable=True,
    ),
    Field("ephemeral", FieldType.BOOLEAN, "Delete the job after its first successful run."),
    Field(
        "starts_at",
        FieldType.TIME,
        "The job does not run before this time (RFC3339 or 2006-01-02T15:04).",
        nullable=True,
    ),
    Field(
        "expires_at",
        FieldType.TIME,
        "The job does not run after this time (RFC3339 or 2006-01-02T15:04).",
        nullable=True,
    ),
    Field(
        "created_at",
        FieldType.TIME,
        "When the job was first stored; the @every anchor when starts_at is unset.",
        read_only=True,
    ),
    Field(
        "misfire_policy",
        FieldType.STRING,
        "Ticks missed while no leader could run them: skip, run_once (within "
        "misfire_grace) or run_all.",
        choices=MisfirePolicy,
    ),
    Field(
        "misfire_grace", FieldType.DURATION, "How late a missed tick may still run (Go duration)."
    ),
    Field(
        "retry_backoff",
        FieldType.DURATION,
        "Delay before the first retry, doubled per attempt up to 5m (Go duration).",
    ),
    Field("retry_other_node", FieldType.BOOLEAN, "Retry on another node when there is one."),
    Field("timeout", FieldType.DURATION, 'Kill a run after this long (Go duration; "" = never).'),
    Field("retention_count", FieldType.INTEGER, "Executions kept for this job."),
    Field(
        "retention_age",
        FieldType.DURATION,
        'Executions older than this are deleted (Go duration; "" = no age limit).',
    ),
    Field(
        "notify",
        FieldType.NOTIFY,
        "The job's own notifications, after a run's final attempt: webhooks and emails, "
        "each sent once per run on the events it names (the global webhook-*/mail-* "
        "notifications apply as well).",
        example={
            "webhooks": [{"url": "https://hooks.example.com/dkron", "on": ["state_change"]}],
            "emails": [{"to": ["ops@example.com"], "on": ["failure", "retry_exhausted"]}],
        },
    ),
)

_UNSET_DEFAULTS = frozenset({"id", "name", "next", "created_at"})


def _job_defaults() -> dict[str, object]:
    """Each input field's default, in wire form, read from `Job` itself."""
    wire = Job(name="-").to_json()
    return {
        k: v for k, v in wire.items() if k not in _UNSET_DEFAULTS and v not in (None, "", {}, [])
    }


JOB = ObjectSchema(
    "job",
    "A job (Dkron's job object plus dkron-trio's own settings). On input every field but "
    "name is optional, null means not given and unknown fields are ignored; computed "
    "(read-only) fields are accepted for compatibility and merged by the store's rules.",
    _JOB_FIELDS,
    required=("name",),
    accept_null=True,
    defaults=_job_defaults(),
)

EXECUTION = ObjectSchema(
    "execution",
    "One attempt of one run on one node.",
    (
        Field("id", FieldType.STRING, "<started_at as unix nanoseconds>-<node_name>."),
        Field("job_name", FieldType.STRING, "The job."),
        Field("started_at", FieldType.TIME, "When it started."),
        Field(
            "finished_at",
            FieldType.TIME,
            "When it finished; 0001-01-01T00:00:00Z while running.",
        ),
        Field("success", FieldType.BOOLEAN, "Whether it succeeded (false while running)."),
        Field("output", FieldType.STRING, "Combined stdout and stderr (the last 256,000 bytes)."),
        Field("node_name", FieldType.STRING, "The node that ran it."),
        Field("group", FieldType.INTEGER, "Shared by every execution of one run."),
        Field("attempt", FieldType.INTEGER, "1-based attempt number."),
        Field(
            "scheduled_at",
            FieldType.TIME,
            "The scheduled tick this run belongs to.",
            nullable=True,
        ),
        Field("fence", FieldType.INTEGER, "Fencing token of the attempt's plan."),
        Field("status", FieldType.STRING, "Where it stands.", choices=ExecutionStatus),
        Field("exit_code", FieldType.INTEGER, "Process exit code, if any.", nullable=True),
        Field(
            "output_truncated",
            FieldType.BOOLEAN,
            "Set when output_size_limit cut the output.",
        ),
    ),
)

MISSED_TICK = ObjectSchema(
    "missed_tick",
    "A scheduled tick that did not run, and why.",
    (
        Field("job_name", FieldType.STRING, "The job."),
        Field("scheduled_at", FieldType.TIME, "The tick."),
        Field("reason", FieldType.STRING, "Why it did not run.", choices=MissReason),
        Field("recorded_at", FieldType.TIME, "When it was recorded."),
        Field("detail", FieldType.STRING, "More about the reason."),
    ),
)

MEMBER = ObjectSchema(
    "member",
    "A cluster member, in Dkron's (Serf's) member shape.",
    (
        Field("Name", FieldType.STRING, "Node name.", example="dkron1"),
        Field("Addr", FieldType.STRING, "Gossip address.", example="192.168.1.137"),
        Field("Port", FieldType.INTEGER, "Gossip port.", example=8946),
        Field("Tags", FieldType.STRING_MAP, "The node's tags."),
        Field(
            "Status",
            FieldType.INTEGER,
            "Serf member status: 0 none, 1 alive, 2 leaving, 3 left, 4 failed.",
        ),
        Field("ProtocolMin", FieldType.INTEGER, "Lowest gossip protocol version understood."),
        Field("ProtocolMax", FieldType.INTEGER, "Highest gossip protocol version understood."),
        Field("ProtocolCur", FieldType.INTEGER, "Gossip protocol version spoken."),
        Field("DelegateMin", FieldType.INTEGER, "Lowest delegate protocol version understood."),
        Field("DelegateMax", FieldType.INTEGER, "Highest delegate protocol version understood."),
        Field("DelegateCur", FieldType.INTEGER, "Delegate protocol version spoken."),
        Field("id", FieldType.STRING, "Unique id for list views (the node name)."),
        Field("statusText", FieldType.STRING, "Status as text: alive, leaving, left, failed."),
    ),
)

STATUS = ObjectSchema(
    "status",
    "This node: agent name and version, membership figures and node tags.",
    (
        Field("agent", FieldType.OBJECT, "Node name and version."),
        Field("serf", FieldType.OBJECT, "Membership figures (string values, as Serf's)."),
        Field("tags", FieldType.STRING_MAP, "This node's tags."),
    ),
)

ERROR = ObjectSchema(
    "error",
    "Every error answer: what went wrong, naming the field or parameter at fault.",
    (Field("error", FieldType.STRING, "The problem.", example="name: is required"),),
    required=("error",),
)

PAUSE = ObjectSchema(
    "pause",
    "Whether this node refuses new job submissions and scheduled runs.",
    (Field("paused", FieldType.BOOLEAN, "Paused or not."),),
)

HEALTH = ObjectSchema(
    "health",
    "The process answers HTTP.",
    (Field("status", FieldType.STRING, 'Always "healthy".'),),
)

OBJECTS: tuple[ObjectSchema, ...] = (
    JOB,
    EXECUTION,
    MISSED_TICK,
    MEMBER,
    STATUS,
    ERROR,
    PAUSE,
    HEALTH,
)

COMPONENTS: Mapping[str, Mapping[str, Any]] = {obj.name: obj.json_schema() for obj in OBJECTS}
"""Every object schema by name: the OpenAPI components and what handlers check against."""


def ref(obj: ObjectSchema) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{obj.name}"}


def array_of(obj: ObjectSchema) -> dict[str, Any]:
    return {"type": "array", "items": ref(obj)}


def check_job_body(body: object) -> Mapping[str, Any]:
    """The job schema's check on a request body: a JSON object with well-typed fields."""
    if not isinstance(body, Mapping):
        raise ValidationError("job", "must be a JSON object")
    check(COMPONENTS[JOB.name], body, "", COMPONENTS)
    return body


def check_job_list(body: object) -> Sequence[Mapping[str, Any]]:
    """A restore file: a JSON array of job objects, each checked like a job body."""
    if not isinstance(body, list):
        raise ValidationError("file", "must be a JSON array of jobs")
    for index, item in enumerate(body):
        if not isinstance(item, Mapping):
            raise ValidationError(f"file[{index}]", "must be a JSON object")
        check(COMPONENTS[JOB.name], item, f"file[{index}]", COMPONENTS)
    return body
