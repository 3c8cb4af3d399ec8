"""etcd 3.4 as a peer of raft_cluster.py: three members as plain processes on 127.0.0.1.

Debian's ``etcd-server`` package (``apt-get install -y etcd-server``). Each member has its own
data directory and free client and peer ports; members are stopped by PID. Writes go through
the JSON gateway, ``POST /v3/kv/put`` with base64 key and value; the leader is the member
whose ``/v3/maintenance/status`` names itself (``leader == header.member_id``).
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import attrs

ETCD = "etcd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def put_body(key: str, value: str) -> bytes:
    return json.dumps(
        {
            "key": base64.b64encode(key.encode()).decode(),
            "value": base64.b64encode(value.encode()).decode(),
        }
    ).encode()


def post(port: int, path: str, body: bytes, timeout: float) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        decoded: dict[str, Any] = json.loads(data) if data else {}
    except ValueError:
        decoded = {}
    return response.status, decoded


def available() -> str | None:
    """etcd's version line, or None when the binary is missing."""
    if shutil.which(ETCD) is None:
        return None
    out = subprocess.run([ETCD, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else None


@attrs.define
class EtcdCluster:
    """Three etcd members under ``directory``."""

    directory: Path
    client_ports: list[int] = attrs.field(factory=lambda: [_free_port() for _ in range(3)])
    peer_ports: list[int] = attrs.field(factory=lambda: [_free_port() for _ in range(3)])
    _procs: list[subprocess.Popen[bytes] | None] = attrs.field(factory=lambda: [None] * 3)

    def start(self) -> None:
        for index in range(3):
            self.start_member(index)

    def start_member(self, index: int) -> None:
        """Start (or restart, on its existing data dir) member ``index``."""
        initial = ",".join(f"n{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.peer_ports))
        client = f"http://127.0.0.1:{self.client_ports[index]}"
        peer = f"http://127.0.0.1:{self.peer_ports[index]}"
        with (self.directory / f"etcd-{index}.log").open("ab") as log:
            self._procs[index] = subprocess.Popen(
                [
                    ETCD,
                    "--name",
                    f"n{index}",
                    "--data-dir",
                    str(self.directory / f"etcd-{index}.data"),
                    "--listen-client-urls",
                    client,
                    "--advertise-client-urls",
                    client,
                    "--listen-peer-urls",
                    peer,
                    "--initial-advertise-peer-urls",
                    peer,
                    "--initial-cluster",
                    initial,
                    "--initial-cluster-state",
                    "new",
                    "--log-level",
                    "warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
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

    def is_leader(self, index: int) -> bool | None:
        """True/False from the member's status; None if it does not answer."""
        try:
            status, reply = post(self.client_ports[index], "/v3/maintenance/status", b"{}", 1)
        except OSError:
            return None
        if status != 200 or "leader" not in reply:
            return None
        return bool(reply["leader"] == reply["header"]["member_id"])

    def wait_leader(self, within: float = 30) -> int:
        """Index of the leader once every live member answers its status."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            live = [i for i in range(3) if self._procs[i] is not None]
            answers = {i: self.is_leader(i) for i in live}
            if None not in answers.values():
                leaders = [i for i, lead in answers.items() if lead]
                if len(leaders) == 1:
                    return leaders[0]
            time.sleep(0.05)
        raise RuntimeError(f"etcd: no leader after {within}s (logs in {self.directory})")

    def put(self, index: int, key: str, timeout: float) -> bool:
        try:
            status, _ = post(self.client_ports[index], "/v3/kv/put", put_body(key, "x"), timeout)
        except OSError:
            return False
        return status == 200
