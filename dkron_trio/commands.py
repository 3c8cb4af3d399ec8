"""The replicated commands: every state change the cluster agrees on, and their wire codec.

A command is a frozen value naming one store mutation (`dkron_trio.store.base.Store`); the
state machine (`dkron_trio.fsm`) applies committed commands in log order on every server.
Nothing here assumes Raft: any replicated log carrying these bytes would do.

Wire form: one msgpack array ``[CODEC_VERSION, kind, body]`` where ``kind`` is a
`CommandKind` value and ``body`` a map of the command's fields (jobs and executions in their
own record form, `Job.to_json` / `Execution.to_json`; times as RFC3339 in UTC). The codec is
strict both ways, because every server must read the same bytes as the same command:

* `encode_command` refuses (CommandError) a command that would not come back equal from the
  wire: wrong field types, naive datetimes, durations finer than a millisecond, or bytes over
  `MAX_COMMAND_BYTES`. The proposer learns this before anything is replicated.
* `decode_command` accepts only the canonical bytes `encode_command` produces: any malformed,
  unknown-kind, other-version, mistyped, non-canonical or oversize input raises CommandError
  and nothing else.
"""

import functools
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, ClassVar, NoReturn

import attrs
import msgpack

from dkron_trio.acl import AclToken
from dkron_trio.execution import Execution, ExecutionStatus, MissedTick, MissReason
from dkron_trio.job import Job, format_time, parse_time, record_time
from dkron_trio.notify.targets import EmailTarget, JobNotify, WebhookTarget
from dkron_trio.store.base import PlanRecord

CODEC_VERSION = 1
"""Bumped whenever the wire form of any command changes."""

MAX_COMMAND_BYTES = 1 << 20
"""Largest encoded command (equal to the Raft default ``max_proposal_size``)."""

_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 63) - 1
"""Integers must fit SQLite's 64-bit columns, so both stores accept the same values."""


class CommandError(ValueError):
    """A command that cannot be encoded, or bytes that are not a valid command."""


class CommandKind(Enum):
    SET_JOB = "set_job"
    DELETE_JOB = "delete_job"
    PUT_EXECUTION = "put_execution"
    PUT_EXECUTIONS = "put_executions"
    DELETE_EXECUTIONS = "delete_executions"
    RECORD_MISSED = "record_missed"
    SET_CURSOR = "set_cursor"
    RECORD_PLANS = "record_plans"
    SET_MEMBER = "set_member"
    SET_TOKEN = "set_token"
    DELETE_TOKEN = "delete_token"


@attrs.frozen
class SetJob:
    """Upsert a job with the store's merge rules (also how a job is toggled)."""

    kind: ClassVar[CommandKind] = CommandKind.SET_JOB
    job: Job


@attrs.frozen
class DeleteJob:
    kind: ClassVar[CommandKind] = CommandKind.DELETE_JOB
    name: str


@attrs.frozen
class PutExecution:
    kind: ClassVar[CommandKind] = CommandKind.PUT_EXECUTION
    execution: Execution


@attrs.frozen
class PutExecutions:
    """Outcomes workers reported together, in one entry; those of jobs deleted meanwhile are
    skipped on their own (the state machine's result names them)."""

    kind: ClassVar[CommandKind] = CommandKind.PUT_EXECUTIONS
    executions: tuple[Execution, ...]


@attrs.frozen
class DeleteExecutions:
    kind: ClassVar[CommandKind] = CommandKind.DELETE_EXECUTIONS
    job_name: str


@attrs.frozen
class RecordMissed:
    kind: ClassVar[CommandKind] = CommandKind.RECORD_MISSED
    missed: MissedTick


@attrs.frozen
class SetCursor:
    kind: ClassVar[CommandKind] = CommandKind.SET_CURSOR
    job_name: str
    t: datetime


@attrs.frozen
class SetMember:
    """Record where a server of the cluster is reached (its name and RPC address)."""

    kind: ClassVar[CommandKind] = CommandKind.SET_MEMBER
    node_id: int
    name: str
    address: str


@attrs.frozen
class SetToken:
    """Store an ACL token (its hash). With ``bootstrap`` the state machine stores it only
    while no token exists at all, so of concurrent bootstraps through any servers exactly
    one wins, decided by log order."""

    kind: ClassVar[CommandKind] = CommandKind.SET_TOKEN
    token: AclToken
    bootstrap: bool = False


@attrs.frozen
class DeleteToken:
    kind: ClassVar[CommandKind] = CommandKind.DELETE_TOKEN
    token_id: str


@attrs.frozen
class RecordPlans:
    """The scheduler's decisions of one wake-up, in one entry: its log index fences every
    execution they start (DKRON_FENCE). Plans of jobs deleted meanwhile are skipped."""

    kind: ClassVar[CommandKind] = CommandKind.RECORD_PLANS
    plans: tuple[PlanRecord, ...]


Command = (
    SetJob
    | DeleteJob
    | PutExecution
    | PutExecutions
    | DeleteExecutions
    | RecordMissed
    | SetCursor
    | RecordPlans
    | SetMember
    | SetToken
    | DeleteToken
)


def encode_command(cmd: Command, *, verify: bool = True) -> bytes:
    """The command's canonical bytes; CommandError if it would not survive the trip
    (checked by decoding it again when it holds a value that could change, `_may_lose`).

    ``verify=False`` skips the field checks and decoding the bytes again to compare: for
    values that came out of the state machine (a reply's job), which were decoded from
    canonical bytes already and are decoded strictly again by whoever receives them."""
    try:
        if verify:
            _check_fields(cmd)
        data = _pack(cmd)
    except CommandError:
        raise
    except _DECODE_ERRORS as exc:
        raise CommandError(f"cannot encode {type(cmd).__name__}: {exc}") from None
    _check_size(data)
    kind: Any = type(cmd)
    if verify and _may_lose(kind) and _unpack(data, checked=True) != cmd:
        raise CommandError(
            f"{type(cmd).__name__} does not survive encoding (sub-millisecond "
            "duration or a value its record form cannot hold)"
        )
    return data


def decode_command(data: bytes, *, canonical: bool = True) -> Command:
    """The command `data` encodes; CommandError on anything but canonical command bytes.

    ``canonical=False`` skips packing the command again to compare, for bytes that travel
    point to point and never into a replicated log (job orders): the fields are still
    checked as strictly, and whatever the receiver commits is encoded afresh."""
    _check_size(data)
    cmd = _unpack(data, checked=True)
    if canonical and _pack(cmd) != data:
        raise CommandError("command bytes are not in canonical form")
    return cmd


def decode_entry(data: bytes) -> Command:
    """The command of a committed log entry, whose proposer checked it strictly
    (`encode_command`, or `decode_command` at the leader's apply port): field types and
    form are not checked again on every replica. The same bytes decode to the same command
    everywhere; CommandError only for what cannot be read at all."""
    return _unpack(data, checked=False)


# -- packing ------------------------------------------------------------------------------

_DECODE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    OverflowError,
    msgpack.UnpackException,
)
"""What malformed input can raise on its way through msgpack and the record parsers."""


def _check_size(data: bytes) -> None:
    if len(data) > MAX_COMMAND_BYTES:
        raise CommandError(f"command of {len(data)} bytes exceeds {MAX_COMMAND_BYTES}")


def _pack(cmd: Command) -> bytes:
    data: bytes = msgpack.packb([CODEC_VERSION, cmd.kind.value, _body(cmd)], use_bin_type=True)
    return data


def _body(cmd: Command) -> dict[str, Any]:
    match cmd:
        case SetJob(job):
            return {"job": _job_record(job)}
        case DeleteJob(name):
            return {"name": name}
        case PutExecution(ex):
            return {"execution": ex.to_json()}
        case PutExecutions(executions):
            return {"executions": [ex.to_json() for ex in executions]}
        case DeleteExecutions(job_name):
            return {"job_name": job_name}
        case RecordMissed(missed):
            return {"missed": missed.to_json()}
        case SetCursor(job_name, t):
            return {"job_name": job_name, "t": format_time(t)}
        case RecordPlans(plans):
            return {"plans": [_plan_body(plan) for plan in plans]}
        case SetMember(node_id, name, address):
            return {"node_id": node_id, "name": name, "address": address}
        case SetToken(token, bootstrap):
            return {"token": token.to_record(), "bootstrap": bootstrap}
        case DeleteToken(token_id):
            return {"token_id": token_id}


def _plan_body(plan: PlanRecord) -> dict[str, Any]:
    return {
        "job_name": plan.job_name,
        "cursor": format_time(plan.cursor),
        "missed": [m.to_json() for m in plan.missed],
        "started": [ex.to_json() for ex in plan.started],
    }


def _unpack(data: bytes, *, checked: bool) -> Command:
    try:
        frame = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
        if not isinstance(frame, list) or len(frame) != 3:
            raise CommandError("a command is a [version, kind, body] array")
        version, kind, body = frame
        if type(version) is not int or version != CODEC_VERSION:
            raise CommandError(f"unsupported command version {version!r}")
        if not isinstance(kind, str):
            raise CommandError(f"command kind must be a string, got {kind!r}")
        try:
            decode = _DECODERS[CommandKind(kind)]
        except ValueError:
            raise CommandError(f"unknown command kind {kind!r}") from None
        if not isinstance(body, dict):
            raise CommandError(f"{kind} body must be a map")
        cmd = decode(body)
        if checked:
            _check_fields(cmd)
        return cmd
    except CommandError:
        raise
    except _DECODE_ERRORS as exc:
        raise CommandError(f"malformed command: {type(exc).__name__}: {exc}") from None


def _time(value: object) -> datetime:
    t = parse_time(value, "time")
    if t is None:
        raise CommandError("a command time must be set")
    return t


def _missed(obj: object) -> MissedTick:
    if not isinstance(obj, dict):
        raise CommandError("a missed tick must be a map")
    return MissedTick(
        job_name=obj["job_name"],
        scheduled_at=_time(obj["scheduled_at"]),
        reason=MissReason(obj["reason"]),
        recorded_at=_time(obj["recorded_at"]),
        detail=obj["detail"],
    )


def _execution(obj: object) -> Execution:
    """An execution from its `to_json` record, read as trustingly as `Job.from_record`
    (every replica decodes every run's executions): a missing key or unparsable time
    raises, `_check_fields` judges the types and the canonical comparison the forms."""
    if not isinstance(obj, dict):
        raise CommandError("an execution must be a map")
    started_at = record_time(obj["started_at"])
    if started_at is None or not obj["id"] or not obj["job_name"]:
        raise CommandError("an execution needs an id, a job_name and a started_at")
    return Execution(
        id=obj["id"],
        job_name=obj["job_name"],
        started_at=started_at,
        finished_at=record_time(obj["finished_at"]),
        success=obj["success"],
        output=obj["output"],
        node_name=obj["node_name"],
        group=obj["group"],
        attempt=obj["attempt"],
        scheduled_at=record_time(obj["scheduled_at"]),
        fence=obj["fence"],
        status=ExecutionStatus(obj["status"]),
        exit_code=obj["exit_code"],
        output_truncated=obj["output_truncated"],
    )


def _plan(obj: object) -> PlanRecord:
    if not isinstance(obj, dict):
        raise CommandError("a plan must be a map")
    return PlanRecord(
        obj["job_name"],
        _time(obj["cursor"]),
        tuple(_missed(m) for m in _list(obj["missed"], "missed")),
        tuple(_execution(ex) for ex in _list(obj["started"], "started")),
    )


def _job_record(job: Job) -> dict[str, Any]:
    """The job's record form; without targets ``notify`` is left out, so a job encodes to the
    same bytes as before the field existed and log entries written by an older build stay
    canonical (`Job.from_record` reads a missing ``notify`` as none)."""
    record = job.to_json()
    if not job.notify.webhooks and not job.notify.emails:
        del record["notify"]
    return record


def _job(obj: object) -> Job:
    if not isinstance(obj, dict):
        raise CommandError("a job must be a map")
    return Job.from_record(obj)


def _token(obj: object) -> AclToken:
    if not isinstance(obj, dict):
        raise CommandError("a token must be a map")
    return AclToken.from_record(obj)


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise CommandError(f"{what} must be an array")
    return value


_DECODERS: dict[CommandKind, Callable[[dict[str, Any]], Command]] = {
    CommandKind.SET_JOB: lambda b: SetJob(_job(b["job"])),
    CommandKind.SET_MEMBER: lambda b: SetMember(b["node_id"], b["name"], b["address"]),
    CommandKind.DELETE_JOB: lambda b: DeleteJob(b["name"]),
    CommandKind.PUT_EXECUTION: lambda b: PutExecution(_execution(b["execution"])),
    CommandKind.PUT_EXECUTIONS: lambda b: PutExecutions(
        tuple(_execution(ex) for ex in _list(b["executions"], "executions"))
    ),
    CommandKind.DELETE_EXECUTIONS: lambda b: DeleteExecutions(b["job_name"]),
    CommandKind.RECORD_MISSED: lambda b: RecordMissed(_missed(b["missed"])),
    CommandKind.SET_CURSOR: lambda b: SetCursor(b["job_name"], _time(b["t"])),
    CommandKind.SET_TOKEN: lambda b: SetToken(_token(b["token"]), b["bootstrap"]),
    CommandKind.DELETE_TOKEN: lambda b: DeleteToken(b["token_id"]),
    CommandKind.RECORD_PLANS: lambda b: RecordPlans(
        tuple(_plan(plan) for plan in _list(b["plans"], "plans"))
    ),
}


# -- type checks --------------------------------------------------------------------------


_HINTS: Mapping[type, Mapping[str, Any]] = {
    cls: typing.get_type_hints(cls)
    for cls in (
        Job,
        JobNotify,
        WebhookTarget,
        EmailTarget,
        Execution,
        MissedTick,
        AclToken,
        PlanRecord,
        *typing.get_args(Command),
    )
}
"""Field types of every class a command holds (resolved once)."""


@functools.cache
def _may_lose(tp: Any) -> bool:
    """Can a value of checked type `tp` come back different from its record form? Only
    durations can (Go duration text); strings, ints in range, bools, enums and aware
    times (written to the microsecond) come back equal, so a command holding none of
    them needs no decode to verify its encoding (plans and reports: the leader's own
    hot path)."""
    if tp is timedelta:
        return True
    if attrs.has(tp):
        return any(_may_lose(hint) for hint in _HINTS[tp].values())
    args = typing.get_args(tp)
    if args:
        return any(_may_lose(arg) for arg in args if arg is not Ellipsis)
    return tp not in (str, int, bool, datetime, type(None)) and not (
        isinstance(tp, type) and issubclass(tp, Enum)
    )


def _check_fields(value: object) -> None:
    """Every attrs field of `value` (recursively) holds a value of its annotated type."""
    cls: Any = type(value)
    plain, checked = _field_checks(cls)
    for name, classes, tp in plain:
        if not isinstance(getattr(value, name), classes):
            _refuse(value, name, tp)
    for name, check, tp in checked:
        if not check(getattr(value, name)):
            _refuse(value, name, tp)


def _refuse(value: object, name: str, tp: Any) -> NoReturn:
    raise CommandError(
        f"{type(value).__name__}.{name}: {getattr(value, name)!r} is not a valid "
        f"{getattr(tp, '__name__', tp)}"
    )


_Check = Callable[[object], bool]


@functools.cache
def _field_checks(
    cls: Any,
) -> tuple[tuple[tuple[str, tuple[type, ...], Any], ...], tuple[tuple[str, _Check, Any], ...]]:
    """The checks of a class's fields, built once from its type hints (hot path: every
    command is checked on encode and on decode): the fields one isinstance settles, and the
    others with their predicates."""
    hints = _HINTS[cls]
    plain: list[tuple[str, tuple[type, ...], Any]] = []
    checked: list[tuple[str, _Check, Any]] = []
    for f in attrs.fields(typing.cast(Any, cls)):
        tp = hints[f.name]
        classes = _plain(tp)
        if classes is not None:
            plain.append((f.name, classes, tp))
        else:
            checked.append((f.name, _checker(tp), tp))
    return tuple(plain), tuple(checked)


def _plain(tp: Any) -> tuple[type, ...] | None:
    """The classes of `tp` when `isinstance` against them is the whole check (str, bool,
    enums, timedelta, unions of those and None), else None."""
    origin = typing.get_origin(tp)
    if origin is types.UnionType or origin is typing.Union:
        parts = [_plain(arg) for arg in typing.get_args(tp)]
        return None if None in parts else tuple(c for part in parts if part for c in part)
    if origin is not None or tp in (int, datetime) or attrs.has(tp):
        return None
    return (tp,)


@functools.cache
def _checker(tp: Any) -> _Check:
    """A predicate: does a value conform to the type `tp`?"""
    classes = _plain(tp)
    if classes is not None:
        return lambda value: isinstance(value, classes)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is types.UnionType or origin is typing.Union:
        options = [_checker(arg) for arg in args if arg is not type(None)]
        if len(options) == 1 and type(None) in args:
            only = options[0]
            return lambda value: value is None or only(value)
        options = [_checker(arg) for arg in args]
        return lambda value: any(check(value) for check in options)
    if origin is tuple:
        item_classes = _plain(args[0])
        if item_classes is not None:
            return lambda value: (
                isinstance(value, tuple) and all(isinstance(v, item_classes) for v in value)
            )
        item = _checker(args[0])
        return lambda value: isinstance(value, tuple) and all(item(v) for v in value)
    if origin is Mapping:
        key_classes, val_classes = _plain(args[0]), _plain(args[1])
        if key_classes is not None and val_classes is not None:
            return lambda value: (
                isinstance(value, Mapping)
                and all(
                    isinstance(k, key_classes) and isinstance(v, val_classes)
                    for k, v in value.items()
                )
            )
        key, val = _checker(args[0]), _checker(args[1])
        return lambda value: (
            isinstance(value, Mapping) and all(key(k) and val(v) for k, v in value.items())
        )
    if tp is int:
        return lambda value: type(value) is int and _INT_MIN <= value <= _INT_MAX
    if tp is datetime:
        return lambda value: isinstance(value, datetime) and value.utcoffset() is not None
    if attrs.has(tp):

        def nested(value: object) -> bool:
            if not isinstance(value, tp):
                return False
            _check_fields(value)
            return True

        return nested
    raise TypeError(f"no check for field type {tp!r}")


def encode_member(name: str, address: str) -> bytes:
    """A membership change's context: the server's node name and RPC address."""
    data: bytes = msgpack.packb([CODEC_VERSION, name, address], use_bin_type=True)
    return data


def decode_member(data: bytes) -> tuple[str, str]:
    """(name, address) from `encode_member` bytes; CommandError on anything else."""
    try:
        value = msgpack.unpackb(data, raw=False)
    except _DECODE_ERRORS as exc:
        raise CommandError(f"member context is not msgpack: {exc}") from None
    match value:
        case [int() as version, str() as name, str() as address] if version == CODEC_VERSION:
            if name and address:
                return name, address
    raise CommandError("member context must be [version, name, address] with both set")
