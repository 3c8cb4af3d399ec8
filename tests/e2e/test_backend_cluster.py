"""Three real servers keeping their state in an external backend: a job every second,
kill -9 of the leader (the lease holder), and scheduling goes on elsewhere with no tick run
twice and none unexplained (`run_checks`)."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from dkron_trio.run_checks import check_runs
from tests.backends.servers import launcher
from tests.e2e.cluster import get_json, wait_for_leader
from tests.e2e.process import AgentProcess, free_port, wait_for
from tests.e2e.test_failover_runs import _records

JOB = {
    "name": "tick",
    "schedule": "@every 1s",
    "executor": "shell",
    "executor_config": {"command": "true"},
    "tags": {"dkron_server": "true:1"},
    "misfire_policy": "run_all",
}


@pytest.fixture(scope="module", params=["etcd", "redis", "zookeeper", "dynamodb"])
def backend_machines(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[str]]]:
    name: str = request.param
    with launcher(name).running(tmp_path_factory.mktemp(name)) as machines:
        yield name, machines


def _servers(root: Path, backend: str, machines: list[str]) -> list[AgentProcess]:
    servers = [
        AgentProcess(root / f"s{i}" / "dkron.data", free_port(), node_name=f"s{i}")
        for i in (1, 2, 3)
    ]
    keyspace = f"e2e-{uuid.uuid4().hex[:8]}"
    for server in servers:
        joins = [
            a for other in servers if other is not server for a in ("--join", other.gossip_address)
        ]
        server.extra_args = (
            *joins,
            "--backend",
            backend,
            *(a for m in machines for a in ("--backend-machines", m)),
            "--keyspace",
            keyspace,
            "--backend-lease-ttl",
            "2s",
            "--run-lease",
            "3s",
        )
    return servers


async def _successes(server: AgentProcess) -> int:
    runs: list[dict[str, Any]] = await get_json(server, "/v1/jobs/tick/executions") or []
    return sum(e["status"] == "success" for e in runs)


async def test_a_leader_kill_hands_scheduling_over_without_duplicates(
    backend_machines: tuple[str, list[str]], tmp_path: Path
) -> None:
    backend, machines = backend_machines
    servers = _servers(tmp_path, backend, machines)
    for server in servers:
        server.start()
    try:
        first = await wait_for_leader(servers)
        leader = next(s for s in servers if s.node_name == first)
        async with httpx.AsyncClient(base_url=leader.url, timeout=10) as client:
            assert (await client.post("/v1/jobs", json=JOB)).status_code == 201

        async def ran(server: AgentProcess, at_least: int) -> bool:
            return await _successes(server) >= at_least

        await wait_for(lambda: ran(leader, 3), within=20, what="3 runs", agent=leader)
        before = await _successes(leader)
        leader.kill()
        survivors = [s for s in servers if s is not leader]
        name = await wait_for_leader(survivors, within=20)
        new_leader = next(s for s in survivors if s.node_name == name)
        await wait_for(
            lambda: ran(new_leader, before + 4),
            within=20,
            what="runs after the failover",
            agent=new_leader,
        )
        until = datetime.now(UTC) - timedelta(seconds=3)  # every tick before this was planned
        job, executions, missed = await _records(new_leader, "tick")
        assert check_runs(job, executions, missed, until=until, max_targets=1) == []
        assert {e.node_name for e in executions} <= {"s1", "s2", "s3"}
    finally:
        for server in servers:
            server.stop_quietly()
