"""A real ZooKeeper (Debian's jar, standalone) on 127.0.0.1 with a free port and its own data
dir, for the tests; started as a plain Java process, never the system service."""

import contextlib
import pathlib
import socket
import subprocess
from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError

from tests.backends.servers import require_binary, stop, under_ci, wait_until
from tests.ports import free_port

JAR = pathlib.Path("/usr/share/java/zookeeper.jar")
"""Debian's `zookeeper` package; its manifest names every library it needs."""
SIMPLE_LOG = pathlib.Path("/usr/share/java/slf4j-simple.jar")
"""slf4j's plain logger (Debian's libslf4j-java): the server's warnings go to its log."""


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"ruok")
            return s.recv(16) == b"imok"
    except OSError:
        return False


def _opens_sessions(hosts: str) -> bool:
    """A fresh JVM answers ``ruok`` well before its first session is quick: on a loaded
    machine the tests' first connect timed out (10 s) right after ``ruok``. Wait for one."""
    client = KazooClient(hosts=hosts, timeout=10)
    try:
        client.start(timeout=10)
    except KazooTimeoutError:
        return False
    finally:
        client.stop()
        client.close()
    return True


@contextlib.contextmanager
def running(tmp: pathlib.Path) -> Iterator[list[str]]:
    java = require_binary("java", "zookeeper")
    if not JAR.exists():
        reason = f"{JAR} not found (Debian package zookeeper; scripts/test installs it)"
        if under_ci():
            pytest.fail(f"{reason}: required under CI")
        pytest.skip(reason)
    port = free_port()
    root = tmp / "zookeeper"
    (root / "data").mkdir(parents=True, exist_ok=True)
    config = root / "zoo.cfg"
    # A short tick lets sessions (the lease ttl) go down to 0.2 s; up to 60 s allowed.
    config.write_text(
        "tickTime=100\n"
        f"dataDir={root / 'data'}\n"
        f"clientPort={port}\n"
        "clientPortAddress=127.0.0.1\n"
        "minSessionTimeout=200\n"
        "maxSessionTimeout=60000\n"
        "admin.enableServer=false\n"
        "4lw.commands.whitelist=ruok\n"
        "maxClientCnxns=0\n"
    )
    args = [java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
    args += ["-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"]
    classpath = f"{JAR}:{SIMPLE_LOG}" if SIMPLE_LOG.exists() else str(JAR)
    args += ["-cp", classpath, "org.apache.zookeeper.server.ZooKeeperServerMain", str(config)]
    with (root / "zookeeper.log").open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        wait_until(lambda: _answers(port), "zookeeper", proc, timeout=60)
        hosts = f"127.0.0.1:{port}"
        wait_until(lambda: _opens_sessions(hosts), "zookeeper sessions", proc, timeout=120)
        yield [hosts]
    finally:
        stop(proc, "zookeeper", root / "zookeeper.log")
