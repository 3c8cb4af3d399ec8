"""The bodies of the dispatch RPCs (msgpack). Jobs and executions travel in the replicated
commands' form (`SetJob` / `PutExecution` bytes), their fields checked as strictly as a log
entry's (only the canonical-bytes comparison is skipped: these bytes never enter a log, and
encoding and comparing them again cost the leader and the agents a third of their time per
run); any malformed body raises DispatchWireError and nothing else."""

from collections.abc import Callable
from typing import Any, TypeVar

import attrs
import msgpack

from dkron_trio.commands import CommandError, PutExecution, SetJob, decode_command, encode_command
from dkron_trio.execution import Execution
from dkron_trio.job import Job

RUN = "run"
"""Leader → worker. Request: `encode_orders`. Reply: `encode_answers`, one per order."""
CANCEL = "cancel"
"""Leader → worker. Request: execution id (msgpack str). Reply: msgpack bool (was running)."""
STATUS = "status"
"""Leader → worker. Request: msgpack list of execution ids. Reply: list of `encode_status`."""
REPORT = "report"
"""Worker → any server. Request: `encode_executions` of finished executions. Reply: empty."""
OUTPUT = "output"
"""Worker → the ordering server, one-way: msgpack [execution id, chunk bytes]."""


class DispatchWireError(ValueError):
    """Bytes that are not a valid dispatch body."""


@attrs.frozen
class Order:
    """Run this attempt: the leader's term (orders from older terms are refused), the job as
    the leader saw it, the running execution record (its fence set), and where to report."""

    term: int
    job: Job
    execution: Execution
    reply_to: str
    """RPC address (host:port) of the ordering server, for output and the first report."""


def _pack(value: object) -> bytes:
    data: bytes = msgpack.packb(value, use_bin_type=True)
    return data


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise DispatchWireError(f"not msgpack: {exc}") from None


def encode_execution(execution: Execution) -> bytes:
    """Unverified: a server commits a reported execution encoded afresh (and verified)."""
    return encode_command(PutExecution(execution), verify=False)


def decode_execution(data: bytes) -> Execution:
    return _decode(data, PutExecution, "an execution").execution


_C = TypeVar("_C", PutExecution, SetJob)


def _decode(data: bytes, kind: type[_C], what: str) -> _C:
    try:
        cmd = decode_command(data, canonical=False)
    except CommandError as exc:
        raise DispatchWireError(str(exc)) from None
    if not isinstance(cmd, kind):
        raise DispatchWireError(f"expected {what}")
    return cmd


class OrderRefused(Exception):
    """The worker refused one order of a batch (stale term, another node's attempt)."""


def encode_orders(orders: list[Order], job_bytes: Callable[[Job], bytes] | None = None) -> bytes:
    """Orders for one worker, sent together (a scheduler wake-up starts many runs at once).
    ``job_bytes`` may supply a job's encoded form (the leader caches it: jobs change
    rarely, and encoding one costs more than the rest of an order)."""
    encode_job = job_bytes or encode_job_for_order
    return _pack(
        [
            [order.term, encode_job(order.job), encode_execution(order.execution), order.reply_to]
            for order in orders
        ]
    )


def encode_job_for_order(job: Job) -> bytes:
    return encode_command(SetJob(job), verify=False)  # a stored job: canonical


def decode_job(data: bytes) -> Job:
    """A job in its order form (`encode_job_for_order`)."""
    return _decode(data, SetJob, "a job").job


def decode_orders(data: bytes, job_of: Callable[[bytes], Job] = decode_job) -> list[Order]:
    """``job_of`` may memoize decoded jobs by their bytes (a worker sees the same job every
    tick, and decoding one costs more than the rest of an order: `JobCache`)."""
    value = _unpack(data)
    if not isinstance(value, list):
        raise DispatchWireError("orders must be a list")
    return [_order(item, job_of) for item in value]


def _order(value: object, job_of: Callable[[bytes], Job]) -> Order:
    match value:
        case [int() as term, bytes() as job_bytes, bytes() as execution, str() as reply_to]:
            return Order(term, job_of(job_bytes), decode_execution(execution), reply_to)
    raise DispatchWireError("order must be [term, job, execution, reply_to]")


def encode_answers(answers: list[OrderRefused | None]) -> bytes:
    """Per order: nil once it is journalled (new or a repeat), or why it was refused."""
    return _pack([None if a is None else str(a) for a in answers])


def decode_answers(data: bytes) -> list[OrderRefused | None]:
    value = _unpack(data)
    if not isinstance(value, list) or not all(v is None or isinstance(v, str) for v in value):
        raise DispatchWireError("answers must be a list of nil or reasons")
    return [None if v is None else OrderRefused(v) for v in value]


def encode_executions(executions: list[Execution]) -> bytes:
    return _pack([encode_execution(e) for e in executions])


def decode_executions(data: bytes) -> list[Execution]:
    value = _unpack(data)
    if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
        raise DispatchWireError("expected a list of executions")
    return [decode_execution(v) for v in value]


def encode_status(execution: Execution | None) -> bytes:
    """The worker's record of an attempt, or nil when it never received it."""
    return _pack(None if execution is None else encode_execution(execution))


def decode_status(data: bytes) -> Execution | None:
    value = _unpack(data)
    if value is None:
        return None
    if not isinstance(value, bytes):
        raise DispatchWireError("status must be nil or an execution")
    return decode_execution(value)


def encode_ids(ids: list[str]) -> bytes:
    return _pack(ids)


def decode_ids(data: bytes) -> list[str]:
    value = _unpack(data)
    if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
        raise DispatchWireError("expected a list of execution ids")
    return value


def encode_statuses(executions: list[Execution | None]) -> bytes:
    return _pack([None if e is None else encode_execution(e) for e in executions])


def decode_statuses(data: bytes) -> list[Execution | None]:
    value = _unpack(data)
    if not isinstance(value, list):
        raise DispatchWireError("expected a list of statuses")
    return [decode_status(_pack(v)) for v in value]


def encode_output(execution_id: str, chunk: bytes) -> bytes:
    return _pack([execution_id, chunk])


def decode_output(data: bytes) -> tuple[str, bytes]:
    match _unpack(data):
        case [str() as execution_id, bytes() as chunk]:
            return execution_id, chunk
    raise DispatchWireError("output must be [execution id, bytes]")


def encode_cancel(execution_id: str) -> bytes:
    return _pack(execution_id)


def decode_flag(data: bytes) -> bool:
    value = _unpack(data)
    if not isinstance(value, bool):
        raise DispatchWireError("expected a boolean")
    return value
