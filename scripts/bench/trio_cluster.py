"""Three real ``dkron-trio agent --server`` processes on 127.0.0.1 for raft_cluster.py.

Started as Dkron servers are (``--bootstrap-expect 3``, ``--join`` the other two gossip
addresses; the servers find each other's RPC ports through gossip) by the e2e tests'
`AgentProcess`, each with its own data dir (durable: SQLite raft.db and state.db) and free HTTP,
RPC and gossip ports; killed with SIGKILL by PID and restarted on the same data dir.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.e2e.process import AgentProcess, free_port


def _get(port: int, path: str, timeout: float) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _post(port: int, path: str, body: bytes, timeout: float) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@attrs.define
class TrioCluster:
    directory: Path
    http_ports: list[int] = attrs.field(factory=lambda: [free_port() for _ in range(3)])
    rpc_ports: list[int] = attrs.field(factory=lambda: [free_port() for _ in range(3)])
    gossip_ports: list[int] = attrs.field(factory=lambda: [free_port() for _ in range(3)])
    agents: list[AgentProcess] = attrs.field(factory=list)
    _live: list[bool] = attrs.field(factory=lambda: [False] * 3)

    def __attrs_post_init__(self) -> None:
        for index in range(3):
            joins: list[str] = []
            for other in range(3):
                if other != index:
                    joins += ["--join", f"127.0.0.1:{self.gossip_ports[other]}"]
            self.agents.append(
                AgentProcess(
                    data_dir=self.directory / f"s{index}.data",
                    http_port=self.http_ports[index],
                    node_name=f"s{index}",
                    rpc_port=self.rpc_ports[index],
                    gossip_port=self.gossip_ports[index],
                    extra_args=("--bootstrap-expect", "3", *joins, "--log-level", "warn"),
                )
            )

    def start(self) -> None:
        for index in range(3):
            self.start_node(index)

    def start_node(self, index: int) -> None:
        self.agents[index].start()
        self._live[index] = True

    def kill(self, index: int) -> None:
        self.agents[index].kill()
        self._live[index] = False

    def stop(self) -> None:
        for index, agent in enumerate(self.agents):
            agent.stop_quietly()
            self._live[index] = False

    def cpu_seconds(self) -> list[float]:
        """User + system CPU time each server has used so far (Linux /proc; 0 if not running)."""
        seconds = []
        for agent in self.agents:
            pid = agent.pid
            if pid is None:
                seconds.append(0.0)
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            seconds.append((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"))
        return seconds

    def live(self) -> list[int]:
        return [i for i in range(3) if self._live[i]]

    def leader_seen_by(self, index: int) -> str | None:
        """The leader's node name according to server ``index`` (None: none, or no answer)."""
        try:
            status, body = _get(self.http_ports[index], "/v1/leader", 1)
        except OSError:
            return None
        if status != 200:
            return None
        name = json.loads(body).get("Name")
        return name if isinstance(name, str) else None

    def wait_leader(self, within: float = 60) -> int:
        """Index of the server every live server names as leader."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for index in self.live():
                self.agents[index].assert_alive()
            names = {self.leader_seen_by(i) for i in self.live()}
            if len(names) == 1 and (name := names.pop()) is not None:
                return int(name.removeprefix("s"))
            time.sleep(0.05)
        tails = "\n".join(f"-- s{i}\n{a.log_text()[-1500:]}" for i, a in enumerate(self.agents))
        raise RuntimeError(f"dkron-trio: no agreed leader after {within}s\n{tails}")

    def job_count(self, index: int) -> int | None:
        """How many jobs server ``index`` holds (its local read), None if it does not answer."""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.http_ports[index], timeout=5)
            try:
                conn.request("GET", "/v1/jobs?_end=1")
                response = conn.getresponse()
                response.read()
                total = response.getheader("X-Total-Count")
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            return None
        return int(total) if response.status == 200 and total is not None else None

    def wait_caught_up(self, within: float = 60) -> None:
        """Wait until every server holds the same number of jobs (a restarted one caught up)."""
        deadline = time.monotonic() + within
        counts: set[int | None] = set()
        while time.monotonic() < deadline:
            counts = {self.job_count(i) for i in range(3)}
            if len(counts) == 1 and None not in counts:
                return
            time.sleep(0.1)
        raise RuntimeError(f"dkron-trio: servers still differ after {within}s: {counts}")

    def create_job(self, index: int, body: bytes, timeout: float) -> bool:
        try:
            return _post(self.http_ports[index], "/v1/jobs", body, timeout) == 201
        except (OSError, http.client.HTTPException):
            return False
