"""A real ``dkron-trio agent --server`` sends a job's own webhook after its run (the agent
wires the store into the notification worker)."""

import json
from pathlib import Path

import httpx

from tests.e2e.cluster import post_job, wait_for_leader
from tests.e2e.process import AgentProcess, free_port, wait_for
from tests.notify.harness import Receiver


async def test_a_real_agent_posts_a_jobs_webhook_on_failure(
    tmp_path: Path, receiver: Receiver
) -> None:
    server = AgentProcess(tmp_path / "s1" / "dkron.data", free_port(), node_name="s1")
    server.start()
    try:
        await wait_for_leader([server])
        job = {
            "name": "broken",
            "schedule": "@manually",
            "executor": "shell",
            "executor_config": {"command": "false"},
            "notify": {"webhooks": [{"url": receiver.url, "on": ["failure"]}]},
        }
        response = await post_job(server, job)
        assert response is not None and response.status_code == 201, response
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            assert (await client.post("/v1/jobs/broken")).status_code == 202

        async def posted() -> bool:
            return bool(receiver.requests)

        await wait_for(posted, within=20, what="the job's webhook", agent=server)
    finally:
        server.stop_quietly()
    [(_, body)] = receiver.requests
    assert json.loads(body)["events"] == "failure,state_change"
