"""etcd specifics: endpoints that refuse connections are skipped."""

from collections.abc import Iterator

import pytest

from dkron_trio.backends.etcd import open_driver, prefix_end
from dkron_trio.store.backend import BackendError
from tests.backends.launch_etcd import running
from tests.ports import free_port


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    with running(tmp_path_factory.mktemp("etcd")) as machines:
        yield machines


async def test_a_machine_refusing_connections_is_skipped(etcd: list[str]) -> None:
    dead = f"127.0.0.1:{free_port()}"
    driver = open_driver([dead, *etcd], "skip-dead")
    try:
        assert await driver.append(b"x") == 1
        assert await driver.append(b"y") == 2
    finally:
        await driver.aclose()
    alone = open_driver([dead], "skip-dead")
    try:
        with pytest.raises(BackendError, match="no machine answered"):
            await alone.append(b"z")
    finally:
        await alone.aclose()


def test_prefix_end_is_the_first_key_after_the_prefix() -> None:
    assert prefix_end(b"/dkron/log/") == b"/dkron/log0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff") == b"\x00"


def test_machines_are_required() -> None:
    with pytest.raises(ValueError, match="backend-machines"):
        open_driver([], "x")


def test_no_io_before_first_use() -> None:
    open_driver(["127.0.0.1:1"], "never-used")  # nothing listens there: still no error
