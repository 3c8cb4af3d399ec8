"""A real server with --enable-prometheus serves every metric family, and they move."""

from pathlib import Path

import httpx

from tests.e2e.cluster import post_job, wait_for_leader
from tests.e2e.process import AgentProcess, free_port, wait_for


async def test_metrics_are_served_by_a_real_agent(tmp_path: Path) -> None:
    server = AgentProcess(tmp_path / "s1" / "dkron.data", free_port(), node_name="s1")
    server.extra_args = ("--enable-prometheus",)
    server.start()
    try:
        await wait_for_leader([server])
        job = {
            "name": "ticks",
            "schedule": "@every 1s",
            "executor": "shell",
            "executor_config": {"command": "true"},
        }
        response = await post_job(server, job)
        assert response is not None and response.status_code == 201
        text: list[str] = [""]

        async def moved() -> bool:
            async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
                text[0] = (await client.get("/metrics")).text
            return 'dkron_executions_total{job="ticks",status="success"}' in text[0]

        await wait_for(moved, within=20, what="executions counted", agent=server)
        for family in (
            "dkron_execution_start_lateness_seconds",
            "dkron_raft_term",
            "dkron_raft_applied_index",
            "dkron_raft_fsync_seconds_count",
            "dkron_gossip_members",
            "dkron_http_requests_total",
        ):
            assert family in text[0], family
    finally:
        server.stop_quietly()
