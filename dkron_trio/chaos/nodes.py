"""The cluster's real processes: servers and agents started, killed, paused and restarted.

Each node dials out from its own loopback address (`launch`), and advertises the port of
its chaos proxy as its RPC port, so every RPC connection to it passes the proxy.
"""

from __future__ import annotations

import shutil
import signal
import socket
from pathlib import Path

import attrs

from dkron_trio.chaos.launch import Launcher


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
    launcher: Launcher
    extra_args: tuple[str, ...] = ()
    http_port: int = attrs.field(factory=free_port)
    rpc_port: int = attrs.field(factory=free_port)
    proxy_port: int = 0
    """The chaos proxy's port in front of this node, which it advertises (set before start)."""
    gossip_port: int = attrs.field(factory=free_port)
    log_level: str = "info"
    _pid: int | None = None
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
        return self._pid is not None and self.launcher.exit_code(self._pid) is None

    @property
    def paused(self) -> bool:
        return self._paused

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        if not self.proxy_port:
            raise RuntimeError(f"{self.name}: no proxy port yet")
        self.root.mkdir(parents=True, exist_ok=True)
        argv = [
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
        ]
        self._pid = self.launcher.start(argv, self.source, self.log_path)
        self._paused = False

    def kill(self) -> None:
        """kill -9, and reap."""
        if self._pid is not None:
            self.launcher.kill(self._pid)
        self._paused = False

    def pause(self) -> None:
        if self._pid is not None:
            self.launcher.send(self._pid, signal.SIGSTOP)
            self._paused = True

    def resume(self) -> None:
        if self._pid is not None:
            self.launcher.send(self._pid, signal.SIGCONT)
        self._paused = False

    def exit_code(self) -> int | None:
        """The exit code of a process that ended (None while running or never started)."""
        return None if self._pid is None else self.launcher.exit_code(self._pid)

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
    # With the compiled files (valid: copytree keeps the sources' times), so the fork server
    # does not compile the whole package first.
    shutil.copytree(package, code / package.name)
    return code


def make_nodes(
    root: Path, servers: int, agents: int, launcher: Launcher, log_level: str = "info"
) -> list[Node]:
    """Servers s1..sN (bootstrap-expect N, joined to each other) and agents w1..wM tagged
    kind=worker; node i dials out from 127.0.0.(10+i)."""
    nodes = [
        Node(f"s{i}", root, True, f"127.0.0.{10 + i}", launcher, log_level=log_level)
        for i in range(1, servers + 1)
    ]
    nodes += [
        Node(f"w{i}", root, False, f"127.0.0.{10 + servers + i}", launcher, log_level=log_level)
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
