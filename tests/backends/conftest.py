"""Every backend under one fixture: the contract suites run against each.

The server of a backend starts once per test module (`tests.backends.launch_<name>`,
imported only when used); each test gets its own namespace on it, so tests never see each
other's log or lease. "memory" is the in-memory twin and needs no server. A launcher module
that does not exist yet is skipped locally and fails under CI.
"""

import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import attrs
import pytest

from dkron_trio.backends.memory import MemoryBackend
from dkron_trio.backends.registry import driver_opener
from dkron_trio.store.backend import LogDriver
from tests.backends.servers import launcher

BACKEND_NAMES = ["memory", "etcd", "redis", "zookeeper", "dynamodb"]
_namespaces = itertools.count(1)


@pytest.fixture(scope="module", params=BACKEND_NAMES)
def machines(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[str]]]:
    """(backend name, machines) of a server running for the whole module."""
    name: str = request.param
    if name == "memory":
        yield name, []
        return
    tmp: Path = tmp_path_factory.mktemp(name)
    with launcher(name).running(tmp) as found:
        yield name, found


@attrs.define(eq=False)
class BackendUnderTest:
    """One test's namespace on a backend; `open()` is one more server's connection to it."""

    name: str
    machines: list[str]
    namespace: str
    _memory: MemoryBackend | None = None
    _opened: list[LogDriver] = attrs.field(factory=list)

    def open(self) -> LogDriver:
        if self._memory is not None:
            driver: LogDriver = self._memory.driver()
        else:
            driver = driver_opener(self.name)(self.machines, self.namespace)
        self._opened.append(driver)
        return driver

    async def aclose(self) -> None:
        for driver in self._opened:
            with contextlib.suppress(Exception):
                await driver.aclose()


@pytest.fixture
async def backend(machines: tuple[str, list[str]]) -> AsyncIterator[BackendUnderTest]:
    name, found = machines
    namespace = f"t{next(_namespaces)}-{uuid.uuid4().hex[:8]}"
    memory = MemoryBackend() if name == "memory" else None
    under_test = BackendUnderTest(name, found, namespace, memory)
    try:
        yield under_test
    finally:
        await under_test.aclose()


@pytest.fixture
async def driver(backend: BackendUnderTest) -> LogDriver:
    return backend.open()
