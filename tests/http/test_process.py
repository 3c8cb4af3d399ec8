"""The real ``dkron-trio agent --server`` process through a real HTTP client: Dkron's
getting-started example, then every endpoint, filter, sort and error status once."""

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.process import AgentProcess, free_port, wait_for

GETTING_STARTED: dict[str, Any] = {
    "name": "job1",
    "schedule": "@every 10s",
    "timezone": "Europe/Berlin",
    "owner": "Platform Team",
    "owner_email": "platform@example.com",
    "disabled": False,
    "tags": {"dkron_server": "true:1"},
    "metadata": {"user": "12345"},
    "concurrency": "allow",
    "executor": "shell",
    "executor_config": {"command": "date"},
}
pytestmark = pytest.mark.slow

DATE_OUTPUT = re.compile(r"\d{2}:\d{2}:\d{2}.* \d{4}\n$")


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[tuple[AgentProcess, httpx.AsyncClient]]:
    process = AgentProcess(tmp_path / "dkron.data", free_port())
    process.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{process.http_port}") as client:

            async def up() -> bool:
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(up, within=30, what="the HTTP API", agent=process)
            yield process, client
    finally:
        process.stop_quietly()


async def test_dkron_getting_started_example(
    agent: tuple[AgentProcess, httpx.AsyncClient],
) -> None:
    process, client = agent
    response = await client.post("/v1/jobs", json=GETTING_STARTED)
    assert response.status_code == 201, response.text
    listed = (await client.get("/v1/jobs")).json()
    assert [j["name"] for j in listed] == ["job1"]
    assert listed[0]["next"] is not None

    async def two_successes() -> bool:
        found = (await client.get("/v1/jobs/job1/executions?_order=ASC")).json()
        return sum(1 for e in found if e["success"]) >= 2

    await wait_for(two_successes, within=40, what="two executions of job1", agent=process)
    first, second = [
        e for e in (await client.get("/v1/jobs/job1/executions?_order=ASC")).json() if e["success"]
    ][:2]
    assert DATE_OUTPUT.search(first["output"]), first["output"]
    assert DATE_OUTPUT.search(second["output"]), second["output"]
    assert _when(second["scheduled_at"]) - _when(first["scheduled_at"]) == timedelta(seconds=10)
    started_gap = _when(second["started_at"]) - _when(first["started_at"])
    assert timedelta(seconds=9) < started_gap < timedelta(seconds=11)
    assert process.terminate() == 0


def _job(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "schedule": "@manually", "executor": "shell",
            "executor_config": {"command": "echo hi"}} | fields  # fmt: skip


async def _expect(
    client: httpx.AsyncClient, method: str, path: str, status: int, **kwargs: Any
) -> Any:
    response = await client.request(method, path, **kwargs)
    assert response.status_code == status, f"{method} {path}: {response.text}"
    assert response.headers["X-Whom"] == "node1"
    if status >= 400:
        assert "error" in response.json(), response.text
    return response.json() if response.content else None


async def test_every_endpoint_and_error_over_http(
    agent: tuple[AgentProcess, httpx.AsyncClient],
) -> None:
    process, client = agent
    x = _expect
    await x(client, "GET", "/health", 200)
    assert (await x(client, "GET", "/v1/", 200))["agent"]["name"] == "node1"
    assert [m["Name"] for m in await x(client, "GET", "/v1/members", 200)] == ["node1"]
    assert (await x(client, "GET", "/v1/leader", 200))["Name"] == "node1"
    assert await x(client, "GET", "/v1/isleader", 200) == "I am a leader"

    await x(client, "POST", "/v1/jobs", 201, json=_job("alpha", metadata={"team": "a"}))
    await x(client, "PATCH", "/v1/jobs", 201, json=_job("bravo", displayname="B", retries=2))
    await x(client, "PUT", "/v1/jobs/charlie", 201, json=_job("", disabled=True))
    await x(client, "POST", "/v1/jobs", 201, json=_job("delta", parent_job="alpha"))
    for query, names in [
        ("metadata[team]=a", ["alpha"]),
        ("q=BRA", ["bravo"]),
        ("disabled=true", ["charlie"]),
        ("status=untriggered&_sort=retries&_order=DESC", ["bravo", "delta", "charlie", "alpha"]),
        ("_sort=displayname&_start=1&_end=3", ["charlie", "delta"]),
    ]:
        found = await x(client, "GET", f"/v1/jobs?{query}", 200)
        assert [j["name"] for j in found] == names, query
    response = await client.get("/v1/jobs?_start=0&_end=1")
    assert response.headers["X-Total-Count"] == "4"
    await x(client, "POST", "/v1/jobs?runoncreate", 201, json=_job("eager"))

    async def eager_ran() -> bool:
        return bool((await client.get("/v1/jobs/eager/executions")).json())

    await wait_for(eager_ran, within=20, what="eager's run on create", agent=process)

    await x(client, "POST", "/v1/jobs/alpha", 202)

    async def alpha_done() -> bool:
        found = (await client.get("/v1/jobs/alpha/executions")).json()
        return bool(found) and all(e["finished_at"] != "0001-01-01T00:00:00Z" for e in found)

    await wait_for(alpha_done, within=20, what="alpha's run", agent=process)
    [run] = await x(client, "GET", "/v1/jobs/alpha/executions?_sort=id&output_size_limit=2", 200)
    assert (run["output"], run["output_truncated"]) == ("i\n", True)
    shown = await x(client, "GET", f"/v1/jobs/alpha/executions/{run['id']}", 200)
    assert shown["output"] == "hi\n"
    await x(client, "POST", f"/v1/jobs/alpha/executions/{run['id']}/cancel", 409)
    await x(client, "POST", "/v1/jobs/bravo/run", 202)
    assert await x(client, "GET", "/v1/jobs/bravo/missed", 200) == []
    await x(client, "GET", "/v1/busy", 200)
    assert (await x(client, "POST", "/v1/jobs/charlie/toggle", 200))["disabled"] is False
    await x(client, "DELETE", "/v1/jobs/alpha/executions", 200)
    files = {"file": ("jobs.json", json.dumps([_job("echo")]).encode(), "application/json")}
    assert await x(client, "POST", "/v1/restore", 200, files=files) == ["success create echo"]

    await x(client, "POST", "/v1/jobs", 400, content=b"{not json")
    await x(client, "POST", "/v1/jobs", 400, json=_job("Bad"))
    await x(client, "POST", "/v1/jobs", 400, json=_job("tz", timezone="Nowhere/Land"))
    await x(client, "POST", "/v1/jobs", 413, json=_job("big", displayname="x" * (1 << 20)))
    await x(client, "GET", "/v1/jobs?_sort=nothing", 400)
    await x(client, "GET", "/v1/jobs/ghost", 404)
    await x(client, "GET", "/v1/jobs/alpha/executions/1-x", 404)
    await x(client, "DELETE", "/v1/jobs/alpha", 409)
    await x(client, "DELETE", "/v1/jobs", 405)
    await x(client, "POST", "/v1/jobs", 404, json=_job("orphan", parent_job="ghost"))
    assert await x(client, "POST", "/v1/pause", 200) == {"paused": True}
    await x(client, "POST", "/v1/jobs", 503, json=_job("late"))
    assert await x(client, "GET", "/v1/pause", 200) == {"paused": True}
    assert await x(client, "POST", "/v1/unpause", 200) == {"paused": False}
    await x(client, "DELETE", "/v1/jobs/delta", 200)
    assert (await x(client, "GET", "/v1/openapi.json", 200))["openapi"] == "3.1.0"
    assert (await client.get("/v1/docs")).status_code == 200
    stored = {j["name"] for j in await x(client, "GET", "/v1/jobs", 200)}
    assert stored == {"alpha", "bravo", "charlie", "eager", "echo"}

    assert [m["Name"] for m in await x(client, "POST", "/v1/leave", 200)] == ["node1"]

    exits: list[str] = []

    async def exited() -> bool:
        try:
            process.assert_alive()
        except AssertionError as exc:
            exits.append(str(exc))
            return True
        return False

    await wait_for(exited, within=30, what="the agent to leave")
    assert exits[0].startswith("agent exited with 0:"), exits[0]
