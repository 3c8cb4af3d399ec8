"""Which executors exist, how to validate their config, and how to get one to run a job.

Importing this module stays cheap and IO-free (the pure job model imports KNOWN_EXECUTORS and
validate_executor_config); the executors themselves, which need trio, httpx and processes,
are imported only when one is asked for.
"""

import functools
from collections.abc import Callable, Mapping

from dkron_trio.executors.base import Executor
from dkron_trio.executors.config import (
    OUTPUT_LIMIT_BYTES,
    ExecutorKind,
    Problem,
    validate_http_config,
    validate_shell_config,
)

KNOWN_EXECUTORS: frozenset[str] = frozenset(kind.value for kind in ExecutorKind)

_VALIDATORS: Mapping[ExecutorKind, Callable[[Mapping[str, str]], list[Problem]]] = {
    ExecutorKind.SHELL: validate_shell_config,
    ExecutorKind.HTTP: validate_http_config,
}


_PLUGINS: dict[
    str, tuple[Callable[[], Executor], Callable[[Mapping[str, str]], list[Problem]]]
] = {}
"""Executors added at run time by `register_executor` (a benchmark's no-op executor)."""


def register_executor(
    name: str,
    factory: Callable[[], Executor],
    validate: Callable[[Mapping[str, str]], list[Problem]] = lambda config: [],
) -> None:
    """Make executor `name` known in this process: jobs naming it validate and run here.
    Every server and agent of a cluster must register it alike (servers validate jobs)."""
    if name in KNOWN_EXECUTORS:
        raise ValueError(f"executor {name!r} is built in")
    _PLUGINS[name] = (factory, validate)


def known_executors() -> frozenset[str]:
    return KNOWN_EXECUTORS | _PLUGINS.keys()


class UnknownExecutorError(LookupError):
    """A job names an executor this agent does not have."""

    def __init__(self, name: str) -> None:
        self.name = name
        known = ", ".join(sorted(known_executors()))
        super().__init__(f"unknown executor {name!r} (known: {known})")


def _kind(name: str) -> ExecutorKind:
    try:
        return ExecutorKind(name)
    except ValueError:
        raise UnknownExecutorError(name) from None


def validate_executor_config(name: str, config: Mapping[str, str]) -> list[Problem]:
    """Every problem of `config` for executor `name`, as (key, message); [] when it can run.

    Raises UnknownExecutorError for an executor not in KNOWN_EXECUTORS. A built-in
    executor's verdict is remembered (a pure function of the strings): every replica checks
    every job it applies, and thousands of jobs share a handful of configs.
    """
    plugin = _PLUGINS.get(name)
    if plugin is not None:
        return plugin[1](config)
    key = (name, tuple(config.items()))
    known = _VERDICTS.get(key)
    if known is None:
        known = tuple(_VALIDATORS[_kind(name)](config))
        if len(_VERDICTS) >= _VERDICTS_KEPT:
            _VERDICTS.clear()
        _VERDICTS[key] = known
    return list(known)


_VERDICTS: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Problem, ...]] = {}
_VERDICTS_KEPT = 4096


@functools.cache
def get_executor(name: str, output_limit: int = OUTPUT_LIMIT_BYTES) -> Executor:
    """The agent-wide executor for `name` (shared, so the http executor's TLS cache is too),
    keeping the last `output_limit` bytes of output (`output-limit`)."""
    plugin = _PLUGINS.get(name)
    if plugin is not None:
        return plugin[0]()
    kind = _kind(name)
    if kind is ExecutorKind.SHELL:
        from dkron_trio.executors.shell import ShellExecutor  # noqa: PLC0415

        return ShellExecutor(output_limit=output_limit)
    from dkron_trio.executors.http import HttpExecutor  # noqa: PLC0415

    return HttpExecutor(output_limit=output_limit)
