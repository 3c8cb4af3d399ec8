"""kill -9 of the leader while jobs run every second on agents: no tick runs twice, and every
tick is an execution or a missed-tick record (run_all: the election's ticks run late)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from dkron_trio.execution import Execution, MissedTick, MissReason
from dkron_trio.job import Job
from dkron_trio.run_checks import check_runs
from tests.e2e.cluster import Cluster, get_json, wait_for_leader
from tests.e2e.process import AgentProcess, free_port, wait_for

JOBS = 5


def _job(i: int) -> dict[str, Any]:
    return {
        "name": f"tick-{i}",
        "schedule": "@every 1s",
        "executor": "shell",
        "executor_config": {"command": "sleep 0.3"},
        "tags": {"kind": "worker:1"},
        "misfire_policy": "run_all",
    }


async def _records(
    server: AgentProcess, name: str
) -> tuple[Job, list[Execution], list[MissedTick]]:
    job = Job.from_record(await get_json(server, f"/v1/jobs/{name}"))
    executions = [
        Execution.from_json(e) for e in await get_json(server, f"/v1/jobs/{name}/executions") or []
    ]
    missed = [
        MissedTick(
            name,
            datetime.fromisoformat(m["scheduled_at"]),
            MissReason(m["reason"]),
            datetime.fromisoformat(m["recorded_at"]),
            m.get("detail", ""),
        )
        for m in await get_json(server, f"/v1/jobs/{name}/missed") or []
    ]
    return job, executions, missed


async def test_leader_kill_loses_and_doubles_no_tick(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path, 3)
    workers = [
        AgentProcess(tmp_path / n / "dkron.data", free_port(), node_name=n, server=False)
        for n in ("w1", "w2")
    ]
    for worker in workers:
        worker.extra_args = ("--join", cluster.servers[0].gossip_address, "--tag", "kind=worker")
    cluster.start()
    for worker in workers:
        worker.start()
    try:
        leader = cluster.by_name(await wait_for_leader(cluster.servers))

        async def workers_alive() -> bool:
            members: list[dict[str, Any]] = await get_json(leader, "/v1/members") or []
            alive = {m["Name"] for m in members if m["statusText"] == "alive"}
            return {"w1", "w2"} <= alive

        await wait_for(workers_alive, within=20, what="workers alive", agent=leader)
        async with httpx.AsyncClient(base_url=leader.url, timeout=10) as client:
            for i in range(JOBS):
                assert (await client.post("/v1/jobs", json=_job(i))).status_code == 201

        async def runs_on_all(server: AgentProcess, at_least: int) -> bool:
            for i in range(JOBS):
                runs = await get_json(server, f"/v1/jobs/tick-{i}/executions") or []
                if sum(e["status"] == "success" for e in runs) < at_least:
                    return False
            return True

        await wait_for(lambda: runs_on_all(leader, 3), within=30, what="runs", agent=leader)
        leader.kill()
        survivors = [s for s in cluster if s is not leader]
        new_leader = cluster.by_name(await wait_for_leader(survivors))
        await wait_for(
            lambda: runs_on_all(new_leader, 8),
            within=40,
            what="runs after failover",
            agent=new_leader,
        )
        until = datetime.now(UTC) - timedelta(seconds=3)  # every tick before this was planned
        for i in range(JOBS):
            job, executions, missed = await _records(new_leader, f"tick-{i}")
            assert {e.node_name for e in executions} <= {"w1", "w2"}
            violations = check_runs(job, executions, missed, until=until, max_targets=1)
            assert violations == [], violations
    finally:
        for worker in workers:
            worker.stop_quietly()
        cluster.stop()
