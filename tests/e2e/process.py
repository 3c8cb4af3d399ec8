"""Helpers to run real ``dkron-trio agent`` processes in tests."""

import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import trio

from tests import ports


def free_port() -> int:
    """A port for an agent's listener (`tests.ports.free_port`)."""
    return ports.free_port()


@attrs.define
class AgentProcess:
    """One ``dkron-trio agent --server`` subprocess writing its log to a file."""

    data_dir: Path
    http_port: int
    node_name: str = "node1"
    extra_args: tuple[str, ...] = ()
    rpc_port: int = attrs.field(factory=free_port)
    gossip_port: int = attrs.field(factory=free_port)
    env: dict[str, str] = attrs.field(factory=dict)
    server: bool = True
    entry: tuple[str, ...] = ("-m", "dkron_trio")
    """How Python starts the CLI (a benchmark's launcher registers a no-op executor first)."""
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.node_name}.log"

    def start(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [
                sys.executable,
                *self.entry,
                "agent",
                *(["--server"] if self.server else []),
                "--data-dir",
                str(self.data_dir),
                "--node-name",
                self.node_name,
                "--http-addr",
                f"127.0.0.1:{self.http_port}",
                "--rpc-port",
                str(self.rpc_port),
                "--bind-addr",
                self.gossip_address,
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        log.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def gossip_address(self) -> str:
        return f"127.0.0.1:{self.gossip_port}"

    @property
    def rpc_address(self) -> str:
        return f"127.0.0.1:{self.rpc_port}"

    def send_signal(self, sig: signal.Signals) -> None:
        assert self._proc is not None
        self._proc.send_signal(sig)

    def kill(self) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGKILL)
        self._proc.wait(timeout=10)

    def terminate(self) -> int:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGTERM)
        return self._proc.wait(timeout=40)

    def stop_quietly(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def assert_alive(self) -> None:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise AssertionError(f"agent exited with {self._proc.returncode}:\n{self.log_text()}")


async def wait_for(
    condition: Callable[[], Awaitable[bool]],
    *,
    within: float,
    what: str,
    agent: AgentProcess | None = None,
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds saying ``what``."""
    with trio.move_on_after(within):
        while True:
            if agent is not None:
                agent.assert_alive()
            if await condition():
                return
            await trio.sleep(0.05)
    logs = agent.log_text()[-4000:] if agent is not None else ""
    raise AssertionError(f"timed out after {within}s waiting for {what}\n{logs}")
