"""A real redis-server on 127.0.0.1 with a free port and its own data dir, for the tests."""

import contextlib
import pathlib
import socket
import subprocess
from collections.abc import Iterator

from tests.backends.servers import require_binary, stop, wait_until
from tests.ports import free_port


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def running(tmp: pathlib.Path) -> Iterator[list[str]]:
    binary = require_binary("redis-server", "redis-server")
    port = free_port()
    data = tmp / "redis"
    data.mkdir(parents=True, exist_ok=True)
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data)]
    args += ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]
    args += ["--protected-mode", "no", "--logfile", str(data / "redis.log")]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _answers(port), "redis-server", proc, timeout=30)
        yield [f"127.0.0.1:{port}"]
    finally:
        stop(proc, "redis-server", data / "redis.log")
