"""PySyncObj 0.3 as a peer of raft_cluster.py: three nodes in subprocesses, journal file on.

PySyncObj has no client protocol: a write is a call of a ``@replicated`` method inside a node's
process. So the load runs inside the leader's process through the callback API, keeping
``concurrency`` calls outstanding (each callback issues the next). That is PySyncObj's best
case (no client hop, no request parsing), which makes "dkron-trio >= 1x PySyncObj" a
conservative comparison. PySyncObj writes its journal without fsync (durable only against a
process crash, not a power loss); its 100 ms append-entries timer bounds a single caller.

Each node also serves a tiny control port (one JSON line in, one JSON line out) so the bench
can ask who leads and start a load.

PySyncObj ships no type information; it is imported through importlib and used only through
`_ReplicatedDict`, so the rest of the module stays typed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

# ---- node side (child process) ---------------------------------------------------------------


class _ReplicatedDict:
    """One PySyncObj node holding a replicated dict (``batteries.ReplDict``)."""

    def __init__(self, self_addr: str, partners: list[str], journal: Path) -> None:
        pysyncobj: Any = importlib.import_module("pysyncobj")
        batteries: Any = importlib.import_module("pysyncobj.batteries")
        self._dict: Any = batteries.ReplDict()
        conf: Any = pysyncobj.SyncObjConf(journalFile=str(journal))
        self._obj: Any = pysyncobj.SyncObj(self_addr, partners, conf=conf, consumers=[self._dict])

    def leader(self) -> str | None:
        node: Any = self._obj.getStatus()["leader"]
        return None if node is None else str(node.address)

    def set(self, key: str, value: str, done: Callable[[bool], None]) -> None:
        """Propose ``key = value``; ``done(committed)`` runs in PySyncObj's thread."""

        def callback(result: object, error: int) -> None:
            done(error == 0)

        self._dict.set(key, value, callback=callback)

    def version(self) -> str:
        pysyncobj: Any = importlib.import_module("pysyncobj.version")
        return str(pysyncobj.VERSION)


@attrs.define
class _Load:
    """Keeps ``concurrency`` writes outstanding until ``seconds`` have passed."""

    node: _ReplicatedDict
    seconds: float
    latencies: list[float] = attrs.field(factory=list)
    errors: int = 0
    _outstanding: int = 0
    _next_key: int = 0
    _deadline: float = 0.0
    _lock: threading.Lock = attrs.field(factory=threading.Lock)
    _finished: threading.Event = attrs.field(factory=threading.Event)

    def run(self, concurrency: int) -> float:
        began = time.perf_counter()
        self._deadline = began + self.seconds
        with self._lock:
            self._outstanding = concurrency
        for _ in range(concurrency):
            self._propose()
        self._finished.wait()
        return time.perf_counter() - began

    def _propose(self) -> None:
        with self._lock:
            key = self._next_key
            self._next_key += 1
        started = time.perf_counter()
        self.node.set(f"k{key}", "v" * 16, lambda ok: self._done(ok, started))

    def _done(self, ok: bool, started: float) -> None:
        now = time.perf_counter()
        with self._lock:
            if ok:
                self.latencies.append(now - started)
            else:
                self.errors += 1
            again = now < self._deadline
            if not again:
                self._outstanding -= 1
                if self._outstanding == 0:
                    self._finished.set()
        if again:
            self._propose()


def serve_node(self_port: int, partner_ports: list[int], journal: Path, control: int) -> None:
    node = _ReplicatedDict(
        f"127.0.0.1:{self_port}", [f"127.0.0.1:{p}" for p in partner_ports], journal
    )

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for line in self.rfile:
                request = json.loads(line)
                op = request["op"]
                reply: dict[str, object]
                if op == "status":
                    reply = {"leader": node.leader(), "version": node.version()}
                elif op == "load":
                    load = _Load(node, float(request["seconds"]))
                    elapsed = load.run(int(request["concurrency"]))
                    reply = {"elapsed": elapsed, "latencies": load.latencies, "errors": load.errors}
                else:
                    reply = {"error": f"unknown op {op!r}"}
                self.wfile.write(json.dumps(reply).encode() + b"\n")
                self.wfile.flush()

    socketserver.ThreadingTCPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.daemon_threads = True
    with socketserver.ThreadingTCPServer(("127.0.0.1", control), Handler) as server:
        server.serve_forever()


# ---- bench side -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ask(port: int, request: dict[str, object], timeout: float) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = conn.recv(1 << 20)
            if not chunk:
                raise OSError("control connection closed")
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply


@attrs.frozen
class LoadResult:
    elapsed: float
    latencies: list[float]
    errors: int


@attrs.define
class PySyncObjCluster:
    """Three PySyncObj node processes on free 127.0.0.1 ports, each with its journal in
    ``directory``; stopped by PID."""

    directory: Path
    raft_ports: list[int] = attrs.field(factory=lambda: [_free_port() for _ in range(3)])
    control_ports: list[int] = attrs.field(factory=lambda: [_free_port() for _ in range(3)])
    _procs: list[subprocess.Popen[bytes] | None] = attrs.field(factory=lambda: [None] * 3)

    def start(self) -> None:
        for index in range(3):
            self.start_node(index)

    def start_node(self, index: int) -> None:
        partners = ",".join(str(p) for i, p in enumerate(self.raft_ports) if i != index)
        with (self.directory / f"pysyncobj-{index}.log").open("ab") as log:
            self._procs[index] = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--node",
                    str(self.raft_ports[index]),
                    "--partners",
                    partners,
                    "--journal",
                    str(self.directory / f"journal-{index}.bin"),
                    "--control",
                    str(self.control_ports[index]),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def kill(self, index: int) -> None:
        proc = self._procs[index]
        if proc is not None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            self._procs[index] = None

    def stop(self) -> None:
        for index in range(3):
            self.kill(index)

    def status(self, index: int) -> dict[str, Any] | None:
        try:
            return _ask(self.control_ports[index], {"op": "status"}, timeout=1)
        except (OSError, ValueError):
            return None

    def wait_leader(self, within: float = 30) -> int:
        """Index of the node every live node names as leader."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            live = [i for i in range(3) if self._procs[i] is not None]
            leaders = {(s or {}).get("leader") for s in map(self.status, live)}
            if len(leaders) == 1 and (leader := leaders.pop()) is not None:
                return self.raft_ports.index(int(leader.rsplit(":", 1)[1]))
            time.sleep(0.05)
        raise RuntimeError(f"PySyncObj: no leader after {within}s (logs in {self.directory})")

    def version(self, index: int) -> str:
        return str((self.status(index) or {}).get("version", "?"))

    def load(self, leader: int, concurrency: int, seconds: float) -> LoadResult:
        reply = _ask(
            self.control_ports[leader],
            {"op": "load", "concurrency": concurrency, "seconds": seconds},
            timeout=seconds + 60,
        )
        return LoadResult(float(reply["elapsed"]), list(reply["latencies"]), int(reply["errors"]))


def main() -> None:
    parser = argparse.ArgumentParser(description="one PySyncObj node (started by the bench)")
    parser.add_argument("--node", type=int, required=True)
    parser.add_argument("--partners", required=True)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--control", type=int, required=True)
    args = parser.parse_args()
    partners = [int(p) for p in args.partners.split(",")]
    serve_node(args.node, partners, args.journal, args.control)


if __name__ == "__main__":
    main()
