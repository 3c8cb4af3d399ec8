"""Logging: a constant message plus key-value context, printed as text or JSON lines.

Shells log through ``get_logger(__name__)``::

    log = get_logger(__name__)
    log.info("execution finished", job=name, attempt=2, success=True)

so messages stay greppable and the context stays machine-readable. ``setup_logging`` picks
the output format from ``log-format`` and the threshold from ``log-level``.
"""

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TextIO

from dkron_trio.config import LogFormat, LogLevel

_LEVELS = {
    LogLevel.DEBUG: logging.DEBUG,
    LogLevel.INFO: logging.INFO,
    LogLevel.WARN: logging.WARNING,
    LogLevel.ERROR: logging.ERROR,
    LogLevel.FATAL: logging.CRITICAL,
    LogLevel.PANIC: logging.CRITICAL,
}
_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}
_KV_ATTR = "kv"


class KVLogger:
    """A logger taking a constant message and key-value context as keyword arguments.

    Context bound with ``bind`` (or ``get_logger(name, **bound)``) joins every message.
    """

    def __init__(self, logger: logging.Logger, bound: Mapping[str, object]) -> None:
        self._logger = logger
        self._bound = dict(bound)

    def bind(self, **context: object) -> "KVLogger":
        return KVLogger(self._logger, {**self._bound, **context})

    def debug(self, message: str, /, **context: object) -> None:
        self._log(logging.DEBUG, message, context)

    def info(self, message: str, /, **context: object) -> None:
        self._log(logging.INFO, message, context)

    def warning(self, message: str, /, **context: object) -> None:
        self._log(logging.WARNING, message, context)

    def error(self, message: str, /, **context: object) -> None:
        self._log(logging.ERROR, message, context)

    def exception(self, message: str, /, **context: object) -> None:
        """Log at error level with the exception being handled."""
        self._log(logging.ERROR, message, context, exc_info=True)

    def _log(
        self, level: int, message: str, context: Mapping[str, object], exc_info: bool = False
    ) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(
                level,
                message,
                exc_info=exc_info,
                extra={_KV_ATTR: {**self._bound, **context}},
                stacklevel=3,
            )


def get_logger(name: str, **bound: object) -> KVLogger:
    return KVLogger(logging.getLogger(name), bound)


def _context(record: logging.LogRecord) -> Mapping[str, object]:
    kv = getattr(record, _KV_ATTR, None)
    return kv if isinstance(kv, Mapping) else {}


def _timestamp(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _level_name(record: logging.LogRecord) -> str:
    return _NAMES.get(record.levelno, record.levelname.lower())


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, then the context keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": _timestamp(record),
            "level": _level_name(record),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _context(record).items():
            out[key if key not in out else f"ctx_{key}"] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def _text_value(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '="' for c in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """``<time> <level> <logger>: <msg> key=value ...`` (logfmt-style quoting)."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [
            _timestamp(record),
            f"{_level_name(record).upper():<5}",
            f"{record.name}:",
            record.getMessage(),
        ]
        parts += [f"{key}={_text_value(value)}" for key, value in _context(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _Handler(logging.StreamHandler[TextIO]):
    """Marks the handler setup_logging installed, so a second call replaces it."""


def setup_logging(level: LogLevel, fmt: LogFormat, stream: TextIO | None = None) -> None:
    """Send every log record at or above ``level`` to ``stream`` (stderr) in ``fmt``."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(handler)
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else TextFormatter())
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    # httpx logs every request at INFO (an etcd backend makes several a second); its
    # warnings still show, and at debug level its requests too.
    quiet = _LEVELS[level] if _LEVELS[level] <= logging.DEBUG else logging.WARNING
    logging.getLogger("httpx").setLevel(max(_LEVELS[level], quiet))
