"""A real dynalite (DynamoDB's API on LevelDB, from npm) on 127.0.0.1 with a free port and its
own data dir, for the tests. scripts/test installs it under .venv/dynalite."""

import contextlib
import pathlib
import shutil
import socket
import subprocess
import threading
import warnings
from collections.abc import Iterator

import attrs
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


@attrs.define
class _Supervised:
    """dynalite (an emulator, not what is under test) restarted on the same port and data
    if it exits while in use: one CI run saw it gone mid-test, its log lost. A restart is
    reported as a warning with the log's tail; the data is on disk and survives it."""

    args: list[str]
    root: pathlib.Path
    proc: subprocess.Popen[bytes]
    restarts: list[str] = attrs.field(factory=list)
    stopping: threading.Event = attrs.field(factory=threading.Event)

    def watch(self) -> None:
        while not self.stopping.wait(0.2):
            code = self.proc.poll()
            if code is None or len(self.restarts) >= _MAX_RESTARTS:
                continue
            tail = self.log.read_bytes()[-2000:].decode(errors="replace")
            self.restarts.append(f"dynalite exited with {code}; its log ended:\n{tail}")
            self.proc = self.start()

    @property
    def log(self) -> pathlib.Path:
        return self.root / "dynalite.log"

    def start(self) -> subprocess.Popen[bytes]:
        return _start(self.args, self.root)


def _start(args: list[str], root: pathlib.Path) -> subprocess.Popen[bytes]:
    with (root / "dynalite.log").open("ab") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=root)


_MAX_RESTARTS = 3


@contextlib.contextmanager
def running(tmp: pathlib.Path) -> Iterator[list[str]]:
    require_binary("node", "nodejs")
    dynalite = _dynalite()
    port = free_port()
    root = tmp / "dynalite"
    root.mkdir(parents=True, exist_ok=True)
    args = [dynalite, "--host", "127.0.0.1", "--port", str(port), "--path", str(root / "db")]
    args += ["--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0"]
    supervised = _Supervised(args, root, _start(args, root))
    wait_until(lambda: _answers(port), "dynalite", supervised.proc, timeout=60)
    watcher = threading.Thread(target=supervised.watch, daemon=True)
    watcher.start()
    try:
        yield [f"127.0.0.1:{port}"]
    finally:
        supervised.stopping.set()
        watcher.join()
        stop(supervised.proc, "dynalite", supervised.log)
        for restart in supervised.restarts:
            warnings.warn(restart, stacklevel=1)
