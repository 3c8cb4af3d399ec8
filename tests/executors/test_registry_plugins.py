"""An executor registered at run time validates and runs like a built-in one."""

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from dkron_trio.executors import registry
from dkron_trio.executors.base import ExecutionRequest, ExecutionResult, OutputCallback
from dkron_trio.job import Job, ValidationError


class Noop:
    async def run(self, req: ExecutionRequest, on_output: OutputCallback) -> ExecutionResult:
        return ExecutionResult(True, "", 0, "")


@pytest.fixture
def noop() -> Iterator[None]:
    registry.register_executor("noop", Noop, lambda c: [("x", "bad")] if "x" in c else [])
    yield
    registry._PLUGINS.pop("noop")


def _job(config: dict[str, str]) -> Job:
    body = {"name": "j", "schedule": "@manually", "executor": "noop", "executor_config": config}
    return Job.from_json(body, now=datetime.now(UTC))


def test_a_registered_executor_is_known_validated_and_served(noop: None) -> None:
    assert "noop" in registry.known_executors()
    assert _job({}).executor == "noop"
    with pytest.raises(ValidationError, match="x"):
        _job({"x": "1"})
    assert isinstance(registry.get_executor("noop"), Noop)


def test_built_in_names_cannot_be_replaced() -> None:
    with pytest.raises(ValueError, match="built in"):
        registry.register_executor("shell", Noop)


def test_unregistered_names_stay_unknown() -> None:
    with pytest.raises(ValidationError, match="unknown executor 'noop'"):
        _job({})
