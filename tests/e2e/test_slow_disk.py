"""A cluster whose disks take 150 ms per fsync keeps its leader: no elections from slowness."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.cluster import Cluster, post_job, wait_for_leader
from tests.e2e.process import wait_for

FSYNC_MS = 150
WRITES = 15


def _shim(tmp_path: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        if os.environ.get("CI"):
            pytest.fail("gcc is needed to build the slow-fsync shim")
        pytest.skip("gcc not installed")
    source = Path(__file__).with_name("slow_fsync.c")
    library = tmp_path / "slow_fsync.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(library), str(source), "-ldl"], check=True)
    return library


def _leaderships(cluster: Cluster) -> int:
    return sum(server.log_text().count("leading") for server in cluster)


async def test_slow_fsync_causes_no_election(tmp_path: Path) -> None:
    library = _shim(tmp_path)
    cluster = Cluster.create(tmp_path, 3)
    for server in cluster:
        server.env = {"LD_PRELOAD": str(library), "SLOW_FSYNC_MS": str(FSYNC_MS)}
    cluster.start()
    try:
        leader = await wait_for_leader(cluster.servers)

        async def leading() -> bool:
            return _leaderships(cluster) >= 1

        await wait_for(leading, within=20, what="the leader's barrier", agent=cluster.servers[0])
        elected = _leaderships(cluster)
        slowest = 0.0
        for i in range(WRITES):
            started = time.monotonic()
            response = await post_job(cluster.servers[i % 3], _job(f"slow-{i}"))
            slowest = max(slowest, time.monotonic() - started)
            assert response is not None and response.status_code == 201, response
        # The shim is in effect: a write waits for at least two fsyncs (log, then state).
        assert slowest >= 2 * FSYNC_MS / 1000
        assert await wait_for_leader(cluster.servers) == leader
        assert _leaderships(cluster) == elected, "a leader was elected again"
    finally:
        cluster.stop()


def _job(name: str) -> dict[str, object]:
    return {
        "name": name,
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {"command": "true"},
    }
