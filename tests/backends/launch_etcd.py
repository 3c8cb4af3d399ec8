"""A real etcd server for tests: a plain process on 127.0.0.1, own data dir, stopped by PID.

Short heartbeat and election timeouts make etcd accept one-second leases (its shortest TTL
is 1.5 election timeouts), so lease expiry tests stay quick.
"""

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.backends.servers import require_binary, stop, wait_until
from tests.ports import free_port


def _healthy(url: str) -> bool:
    try:
        health: object = httpx.get(f"{url}/health", timeout=1.0).json().get("health")
    except (httpx.HTTPError, ValueError):
        return False
    return health == "true"


@contextlib.contextmanager
def running(tmp: Path) -> Iterator[list[str]]:
    etcd = require_binary("etcd", "etcd-server")
    client, peer = free_port(), free_port()
    client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
    log = (tmp / "etcd.log").open("ab")
    proc = subprocess.Popen(
        [
            etcd,
            "--name",
            "test",
            "--data-dir",
            str(tmp / "etcd-data"),
            "--listen-client-urls",
            client_url,
            "--advertise-client-urls",
            client_url,
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
            "--initial-cluster",
            f"test={peer_url}",
            "--heartbeat-interval",
            "10",
            "--election-timeout",
            "100",
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "10000",
            "--log-level",
            "warn",
            "--logger",
            "zap",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        wait_until(lambda: _healthy(client_url), "etcd", proc, timeout=30)
        yield [f"127.0.0.1:{client}"]
    finally:
        stop(proc, "etcd", tmp / "etcd.log")
