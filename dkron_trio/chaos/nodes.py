"""The cluster's real processes: servers and agents started, killed, paused and restarted.

Each node dials out from its own loopback address (`launch`), and advertises the port of
its chaos proxy as its RPC port, so every RPC connection to it passes the proxy.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import attrs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@attrs.define
class Node:
    """One ``dkron-trio agent`` process; `source` is the address it dials out from."""

    name: str
    root: Path
    server: bool
    source: str
    extra_args: tuple[str, ...] = ()
    http_port: int = attrs.field(factory=free_port)
    rpc_port: int = attrs.field(factory=free_port)
    proxy_port: int = attrs.field(factory=free_port)
    gossip_port: int = attrs.field(factory=free_port)
    log_level: str = "info"
    code: Path | None = None
    """A snapshot of the package to run (`snapshot_code`); None runs the installed one."""
    _proc: subprocess.Popen[bytes] | None = None
    _paused: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def gossip_address(self) -> str:
        return f"127.0.0.1:{self.gossip_port}"

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "dkron_trio.chaos.launch",
                    "agent",
                    *(["--server"] if self.server else []),
                    "--data-dir",
                    str(self.root / self.name / "dkron.data"),
                    "--node-name",
                    self.name,
                    "--http-addr",
                    f"127.0.0.1:{self.http_port}",
                    "--rpc-port",
                    str(self.rpc_port),
                    "--advertise-rpc-port",
                    str(self.proxy_port),
                    "--bind-addr",
                    self.gossip_address,
                    "--log-level",
                    self.log_level,
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
            )
        self._paused = False

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "DKRON_CHAOS_SOURCE": self.source}
        if self.code is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(self.code), env.get("PYTHONPATH", "")) if p
            )
        return env

    def kill(self) -> None:
        """kill -9, and reap."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=10)
        self._paused = False

    def pause(self) -> None:
        if self.running:
            assert self._proc is not None
            self._proc.send_signal(signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGCONT)
        self._paused = False

    def exit_code(self) -> int | None:
        """The exit code of a process that ended by itself (None while running)."""
        return None if self._proc is None else self._proc.poll()

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]


def snapshot_code(root: Path) -> Path:
    """Copy the dkron_trio package under `root` and return the directory to put on
    PYTHONPATH: nodes restarted mid-run then run the code the run began with, even while
    the working tree it came from is being edited."""
    package = Path(__file__).resolve().parents[1]
    code = root / "code"
    shutil.rmtree(code, ignore_errors=True)
    shutil.copytree(package, code / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    return code


def make_nodes(
    root: Path, servers: int, agents: int, log_level: str = "info", code: Path | None = None
) -> list[Node]:
    """Servers s1..sN (bootstrap-expect N, joined to each other) and agents w1..wM tagged
    kind=worker; node i dials out from 127.0.0.(10+i)."""
    nodes = [
        Node(f"s{i}", root, True, f"127.0.0.{10 + i}", log_level=log_level, code=code)
        for i in range(1, servers + 1)
    ]
    nodes += [
        Node(f"w{i}", root, False, f"127.0.0.{10 + servers + i}", log_level=log_level, code=code)
        for i in range(1, agents + 1)
    ]
    server_nodes = nodes[:servers]
    for node in nodes:
        joins = [a for s in server_nodes if s is not node for a in ("--join", s.gossip_address)]
        if node.server:
            node.extra_args = ("--bootstrap-expect", str(servers), *joins)
        else:
            node.extra_args = (*joins, "--tag", "kind=worker")
    return nodes
