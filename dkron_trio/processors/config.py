"""A job's ``processors`` field parsed into processor settings: names, options, defaults.

Dkron's processors run on the leader before the execution is stored and may replace the
stored output (``forward: false`` stores a placeholder). dkron-trio runs them on the node
that ran the execution, after its outcome is committed, so they never delay the record or
the job's dependents; the stored output is always the real (capped) output, and ``forward``
is accepted for compatibility and type-checked only.
"""

from collections.abc import Mapping
from enum import Enum
from pathlib import PurePath

import attrs

DEFAULT_LOG_DIR = "/var/log/dkron"
DEFAULT_SYSLOG_ADDRESS = "/dev/log"
SYSLOG_OUTPUT_LIMIT = 4096
"""Last bytes of output sent in one syslog message (datagrams are small)."""
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False, "": False}


class ProcessorError(ValueError):
    """A processor name or option that is not valid, named in the message."""


class ProcessorKind(Enum):
    LOG = "log"
    FILES = "files"
    SYSLOG = "syslog"


@attrs.frozen
class LogProcessor:
    forward: bool


@attrs.frozen
class FilesProcessor:
    log_dir: PurePath
    forward: bool


@attrs.frozen
class SyslogProcessor:
    address: str
    """``/dev/log`` style socket path, or ``host:port`` for UDP."""
    forward: bool


Processor = LogProcessor | FilesProcessor | SyslogProcessor
_OPTIONS: Mapping[ProcessorKind, frozenset[str]] = {
    ProcessorKind.LOG: frozenset({"forward"}),
    ProcessorKind.FILES: frozenset({"forward", "log_dir"}),
    ProcessorKind.SYSLOG: frozenset({"forward", "address"}),
}


def _bool(name: str, options: Mapping[str, str]) -> bool:
    text = options.get("forward", "").strip().lower()
    if text not in _BOOLS:
        raise ProcessorError(f"processors.{name}.forward: expected true or false, not {text!r}")
    return _BOOLS[text]


def parse_processor(name: str, options: Mapping[str, str]) -> Processor:
    try:
        kind = ProcessorKind(name)
    except ValueError:
        known = ", ".join(k.value for k in ProcessorKind)
        raise ProcessorError(f"unknown processor {name!r}; known: {known}") from None
    unknown = sorted(set(options) - _OPTIONS[kind])
    if unknown:
        raise ProcessorError(f"processors.{name}: unknown option {', '.join(unknown)}")
    forward = _bool(name, options)
    if kind is ProcessorKind.LOG:
        return LogProcessor(forward)
    if kind is ProcessorKind.FILES:
        log_dir = options.get("log_dir", "") or DEFAULT_LOG_DIR
        return FilesProcessor(PurePath(log_dir), forward)
    address = options.get("address", "") or DEFAULT_SYSLOG_ADDRESS
    return SyslogProcessor(address, forward)


def parse_processors(processors: Mapping[str, Mapping[str, str]]) -> tuple[Processor, ...]:
    """Every processor of a job, in name order; raise ProcessorError on the first bad one."""
    return tuple(parse_processor(name, processors[name]) for name in sorted(processors))


def execution_log_name(execution_id: str) -> str:
    """The files processor's file name for an execution (Dkron: ``<id>.log``), made safe."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in execution_id)
    return f"{safe.lstrip('.') or 'execution'}.log"
