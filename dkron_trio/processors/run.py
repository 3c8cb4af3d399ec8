"""Running a job's processors on one finished execution (IO: log, files, syslog socket)."""

import os
import socket as stdlib_socket

import trio

from dkron_trio.execution import Execution
from dkron_trio.job import Job
from dkron_trio.logs import get_logger
from dkron_trio.processors.config import (
    SYSLOG_OUTPUT_LIMIT,
    FilesProcessor,
    LogProcessor,
    Processor,
    SyslogProcessor,
    execution_log_name,
)

log = get_logger(__name__)

_FACILITY_USER = 1
_SEVERITY_INFO = 6
_SEVERITY_ERR = 3


class ProcessorFailed(Exception):
    """A processor that could not do its work (logged by the caller, never retried)."""


def syslog_message(job: Job, execution: Execution) -> bytes:
    """An RFC 3164 message with tag ``dkron`` carrying the execution's outcome and output."""
    severity = _SEVERITY_INFO if execution.success else _SEVERITY_ERR
    output = execution.output.encode()[-SYSLOG_OUTPUT_LIMIT:].decode(errors="replace")
    text = (
        f"<{_FACILITY_USER * 8 + severity}>dkron[{os.getpid()}]: job={job.name} "
        f"execution={execution.id} status={execution.status.value} "
        f"success={str(execution.success).lower()} output={output}"
    )
    return text.encode()


async def _send_syslog(address: str, payload: bytes) -> None:
    if address.startswith("/"):
        sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_DGRAM)
        target: str | tuple[str, int] = address
    else:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ProcessorFailed(f"syslog address {address!r}: expected /path or host:port")
        sock = trio.socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM)
        target = (host, int(port))
    with sock:
        await sock.sendto(payload, target)


async def run_processor(processor: Processor, job: Job, execution: Execution) -> None:
    """Apply one processor; raise ProcessorFailed when its IO fails."""
    try:
        if isinstance(processor, LogProcessor):
            emit = log.info if execution.success else log.error
            emit(
                "execution output",
                job=job.name,
                execution=execution.id,
                status=execution.status.value,
                output=execution.output,
            )
        elif isinstance(processor, FilesProcessor):
            directory = trio.Path(processor.log_dir)
            await directory.mkdir(parents=True, exist_ok=True)
            path = directory / execution_log_name(execution.id)
            await path.write_text(execution.output, encoding="utf-8")
        elif isinstance(processor, SyslogProcessor):
            await _send_syslog(processor.address, syslog_message(job, execution))
    except OSError as exc:
        raise ProcessorFailed(f"{type(processor).__name__}: {exc}") from exc
