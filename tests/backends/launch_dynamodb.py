"""A real dynalite (DynamoDB's API on LevelDB, from npm) on 127.0.0.1 with a free port and its
own data dir, for the tests. scripts/test installs it under .venv/dynalite."""

import contextlib
import pathlib
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from tests.backends.servers import require_binary, stop, under_ci, wait_until
from tests.ports import free_port

INSTALLED = pathlib.Path(__file__).parents[2] / ".venv/dynalite/node_modules/.bin/dynalite"


def _dynalite() -> str:
    found = str(INSTALLED) if INSTALLED.exists() else shutil.which("dynalite")
    if found is None:
        reason = (
            f"dynalite not found at {INSTALLED} (npm package dynalite; scripts/test installs it)"
        )
        if under_ci():
            pytest.fail(f"{reason}: required under CI")
        pytest.skip(reason)
    return found


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return s.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


@contextlib.contextmanager
def running(tmp: pathlib.Path) -> Iterator[list[str]]:
    require_binary("node", "nodejs")
    dynalite = _dynalite()
    port = free_port()
    root = tmp / "dynalite"
    root.mkdir(parents=True, exist_ok=True)
    args = [dynalite, "--host", "127.0.0.1", "--port", str(port), "--path", str(root / "db")]
    args += ["--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"]
    with (root / "dynalite.log").open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        wait_until(lambda: _answers(port), "dynalite", proc, timeout=60)
        yield [f"127.0.0.1:{port}"]
    finally:
        stop(proc, "dynalite", root / "dynalite.log")
