"""Three servers and two agents (real processes): jobs run on the nodes their tags select,
each tick once, with the plan's fence; output streams live; cancel reaches the agent."""

from pathlib import Path
from typing import Any

import httpx

from tests.e2e.cluster import Cluster, get_json, wait_for_leader
from tests.e2e.process import AgentProcess, free_port, wait_for


def _job(name: str, command: str, schedule: str = "@manually", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "schedule": schedule,
        "executor": "shell",
        "executor_config": {"command": command, "shell": "true"},
        **extra,
    }


async def _executions(server: AgentProcess, job: str) -> list[dict[str, Any]]:
    return await get_json(server, f"/v1/jobs/{job}/executions") or []


async def _post(server: AgentProcess, path: str, body: object | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        return await client.post(path, json=body)


async def test_jobs_run_where_their_tags_say_once_per_tick(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path, 3)
    workers = [
        AgentProcess(tmp_path / name / "dkron.data", free_port(), node_name=name, server=False)
        for name in ("w1", "w2")
    ]
    for worker in workers:
        worker.extra_args = (
            "--join",
            cluster.servers[0].gossip_address,
            "--tag",
            "kind=worker",
        )
    cluster.start()
    for worker in workers:
        worker.start()
    try:
        leader = cluster.by_name(await wait_for_leader(cluster.servers))

        async def five_alive() -> bool:
            members: list[dict[str, Any]] = await get_json(leader, "/v1/members") or []
            alive = [m for m in members if m["statusText"] == "alive"]
            return len(alive) == 5

        await wait_for(five_alive, within=20, what="five members alive", agent=leader)

        # "worker:1": exactly one worker per tick, with the plan's fence in its environment.
        created = await _post(
            leader,
            "/v1/jobs",
            _job("one-worker", "echo fence=$DKRON_FENCE", "@every 1s", tags={"kind": "worker:1"}),
        )
        assert created.status_code == 201, created.text

        async def three_done() -> bool:
            done = [
                e
                for e in await _executions(leader, "one-worker")
                if e["finished_at"] != "0001-01-01T00:00:00Z"
            ]
            return len(done) >= 3

        await wait_for(three_done, within=30, what="three runs on workers", agent=leader)
        runs = await _executions(leader, "one-worker")
        ticks = [e["scheduled_at"] for e in runs]
        assert len(ticks) == len(set(ticks)), "a tick ran twice"
        for e in runs:
            assert e["node_name"] in {"w1", "w2"}
            if e["status"] == "success":
                assert e["output"].strip() == f"fence={e['fence']}"
                assert e["fence"] > 0

        # No tags: a run goes to every node, servers and agents alike.
        await _post(leader, "/v1/jobs", _job("everywhere", "hostname"))
        ran = await _post(leader, "/v1/jobs/everywhere")
        assert ran.status_code == 202, ran.text

        async def on_all() -> bool:
            runs = await _executions(leader, "everywhere")
            return {e["node_name"] for e in runs if e["status"] == "success"} == {
                "s1",
                "s2",
                "s3",
                "w1",
                "w2",
            }

        await wait_for(on_all, within=20, what="a run on all five nodes", agent=leader)
        groups = {e["group"] for e in await _executions(leader, "everywhere")}
        assert len(groups) == 1

        # Live output from an agent, seen on the leader before the run ends; then cancel.
        await _post(
            leader,
            "/v1/jobs",
            _job("long", "echo started; sleep 60", tags={"kind": "worker:1"}),
        )
        assert (await _post(leader, "/v1/jobs/long")).status_code == 202

        async def live_output() -> bool:
            busy = await get_json(leader, "/v1/busy") or []
            return any(e["job_name"] == "long" and "started" in e["output"] for e in busy)

        await wait_for(live_output, within=20, what="live output of the long run", agent=leader)
        [running] = [e for e in await _executions(leader, "long") if e["status"] == "running"]
        cancelled = await _post(leader, f"/v1/jobs/long/executions/{running['id']}/cancel")
        assert cancelled.status_code == 202, cancelled.text

        async def was_cancelled() -> bool:
            runs = await _executions(leader, "long")
            return any(e["status"] == "cancelled" for e in runs)

        await wait_for(was_cancelled, within=20, what="the long run cancelled", agent=leader)
    finally:
        for worker in workers:
            worker.stop_quietly()
        cluster.stop()
