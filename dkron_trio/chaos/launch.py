"""Starts chaos nodes as forks of one server process that has imported dkron_trio already.

A fresh interpreter spends a second or more of CPU importing the agent; a whole-cluster
crash restarts 5-7 nodes at once, which on a loaded 2-core machine took 10-15 s before the
first one answered, and so dominated a short run. Forked from a process that imported
everything (and started nothing), a restarted node still begins from its data directory
alone, as after a real crash, but starts in a fraction of that.

Each node dials out from one chosen loopback address (`source`, e.g. 127.0.0.11): all of
127.0.0.0/8 is local on Linux, so this changes nothing but the source address the chaos
proxy sees, from which it tells which node dialed and can cut chosen pairs.
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_START_TIMEOUT = 120.0
"""The first start waits for the fork server's imports (slow on a loaded machine)."""
_KILL_TIMEOUT = 10.0


class Launcher:
    """Starts, watches and kills nodes through the fork server (`zygote`); `code` is the
    package snapshot the nodes run (None: the installed package)."""

    def __init__(self, code: Path | None) -> None:
        env = dict(os.environ)
        if code is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(code), env.get("PYTHONPATH", "")) if p
            )
        self._zygote = subprocess.Popen(
            [sys.executable, "-m", "dkron_trio.chaos.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self._zygote.stdout is not None
        self._out = self._zygote.stdout.fileno()
        os.set_blocking(self._out, False)
        self._buffer = b""
        self._pids: deque[int] = deque()
        self._exits: dict[int, int] = {}

    def start(self, argv: Sequence[str], source: str, log_path: Path) -> int:
        """Fork a node running ``dkron-trio *argv``; its pid."""
        assert self._zygote.stdin is not None
        request = {"argv": list(argv), "source": source, "log": str(log_path)}
        self._zygote.stdin.write(json.dumps(request).encode() + b"\n")
        self._zygote.stdin.flush()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._pids:
            self._read(deadline)
        pid = self._pids.popleft()
        self._exits.pop(pid, None)  # an earlier node's exit, reported before this fork
        return pid

    def exit_code(self, pid: int) -> int | None:
        """The node's exit code (negative: the signal) once it ended; None while it runs."""
        self._read(None)
        return self._exits.get(pid)

    def kill(self, pid: int) -> None:
        """kill -9, and wait until the fork server has reaped it."""
        if self.exit_code(pid) is not None:
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + _KILL_TIMEOUT
        while pid not in self._exits:
            self._read(deadline)

    def send(self, pid: int, signum: int) -> None:
        if self.exit_code(pid) is None:
            os.kill(pid, signum)

    def close(self) -> None:
        """Stop the fork server (its nodes must be killed first)."""
        if self._zygote.stdin is not None:
            self._zygote.stdin.close()
        self._zygote.wait(timeout=_KILL_TIMEOUT)
        if self._zygote.stdout is not None:
            self._zygote.stdout.close()

    def _read(self, deadline: float | None) -> None:
        """Take in what the fork server said; with a deadline, wait for at least one line."""
        timeout = 0.0 if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([self._out], [], [], timeout)
        if not ready:
            if deadline is not None:
                raise RuntimeError("the chaos fork server did not answer in time")
            return
        chunk = os.read(self._out, 65536)
        if not chunk:
            raise RuntimeError(f"the chaos fork server exited ({self._zygote.poll()})")
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            message = json.loads(line)
            if "pid" in message:
                self._pids.append(int(message["pid"]))
            else:
                self._exits[int(message["exit"])] = int(message["code"])


def run_node(argv: list[str], source: str, log_path: str) -> int:
    """In the forked node: output to its log, outgoing loopback TCP from `source`, then the
    ``dkron-trio`` command line; its exit code."""
    from dkron_trio.cli import main as cli_main  # noqa: PLC0415  (preloaded: no cost)

    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    _bind_outgoing(source)
    try:
        return cli_main(argv)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def _bind_outgoing(source: str) -> None:
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex

    def bind_source(sock: socket.socket, address: Any) -> None:
        if (
            sock.family == socket.AF_INET
            and sock.type == socket.SOCK_STREAM
            and isinstance(address, tuple)
            and str(address[0]).startswith("127.")
            and sock.getsockname()[1] == 0
        ):
            sock.bind((source, 0))

    def patched_connect(self: socket.socket, address: Any) -> None:
        bind_source(self, address)
        connect(self, address)

    def patched_connect_ex(self: socket.socket, address: Any) -> int:
        bind_source(self, address)
        return connect_ex(self, address)

    socket.socket.connect = patched_connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = patched_connect_ex  # type: ignore[method-assign, assignment]
