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


async def test_a_killed_agents_forbid_run_is_lost_after_its_lease(tmp_path: Path) -> None:
    server = AgentProcess(tmp_path / "s1" / "dkron.data", free_port(), node_name="s1")
    server.extra_args = ("--run-lease", "2s")
    worker = AgentProcess(tmp_path / "w1" / "dkron.data", free_port(), node_name="w1", server=False)
    worker.extra_args = ("--join", server.gossip_address, "--tag", "kind=worker")
    server.start()
    worker.start()
    try:
        await wait_for_leader([server])

        async def worker_alive() -> bool:
            members: list[dict[str, Any]] = await get_json(server, "/v1/members") or []
            return any(m["Name"] == "w1" and m["statusText"] == "alive" for m in members)

        await wait_for(worker_alive, within=20, what="the worker alive", agent=server)
        job = {**_job(0), "name": "guarded", "concurrency": "forbid"}
        job["executor_config"] = {"command": "sleep 600"}
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert (await client.post("/v1/jobs", json=job)).status_code == 201

        async def statuses() -> list[tuple[str, str]]:
            runs = await get_json(server, "/v1/jobs/guarded/executions") or []
            return [(e["id"], e["status"]) for e in runs]

        async def one_running() -> bool:
            return any(status == "running" for _, status in await statuses())

        await wait_for(one_running, within=20, what="the guarded run", agent=server)
        [first] = [i for i, status in await statuses() if status == "running"]
        worker.kill()

        async def first_lost() -> bool:
            return (first, "lost") in await statuses()

        await wait_for(first_lost, within=30, what="the run lost after its lease", agent=server)
        worker.start()

        async def next_runs() -> bool:
            return any(s == "running" and i != first for i, s in await statuses())

        await wait_for(next_runs, within=30, what="the next tick running", agent=server)
        _, _, missed = await _records(server, "guarded")
        assert any(m.reason is MissReason.OVERLAP for m in missed), "forbid recorded no overlap"
    finally:
        worker.stop_quietly()
        server.stop_quietly()
