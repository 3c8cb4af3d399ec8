"""Every error status of DESIGN.md §6 as JSON naming the problem; a rejected write stores
nothing."""

from typing import Any

import pytest
import trio

from dkron_trio.http.app import create_app
from dkron_trio.http.context import Member
from dkron_trio.job import Job
from dkron_trio.store.base import JobQuery
from dkron_trio.store.memory import MemoryStore
from tests.http.harness import NODE, NODE_TAGS, Api, make_deps, open_api

VALID: dict[str, Any] = {
    "name": "job1",
    "schedule": "@every 10s",
    "executor": "shell",
    "executor_config": {"command": "date"},
}


async def _stored(api: Api) -> int:
    return (await api.store.list_jobs(JobQuery())).total


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (VALID | {"name": 5}, "name: must be a string"),
        (VALID | {"name": "Job1"}, "name: name contains illegal character 'J'"),
        (VALID | {"name": "a.b"}, "name: name contains illegal character '.'"),
        ({k: v for k, v in VALID.items() if k != "name"}, "name: is required"),
        (VALID | {"retries": "3"}, "retries: must be an integer"),
        (VALID | {"retries": -1}, "retries: must not be negative"),
        (VALID | {"disabled": "yes"}, "disabled: must be true or false"),
        (VALID | {"tags": {"a": 1}}, "tags.a: must be a string"),
        (VALID | {"tags": ["a"]}, "tags: must be a JSON object"),
        (VALID | {"executor_config": {"command": True}}, "executor_config.command: must be"),
        (VALID | {"processors": {"log": {"forward": 1}}}, "processors.log.forward: must be"),
        (VALID | {"dependent_jobs": "x"}, "dependent_jobs: must be a JSON array"),
        (VALID | {"concurrency": "sometimes"}, "concurrency: must be one of"),
        (VALID | {"misfire_policy": "never"}, "misfire_policy: must be one of"),
        (VALID | {"executor": "docker"}, "executor: unknown executor 'docker'"),
        (VALID | {"executor": ""}, "executor: is required"),
        (VALID | {"schedule": "every day"}, "schedule: can't parse job schedule"),
        (VALID | {"schedule": ""}, "schedule: is required"),
        (VALID | {"timezone": "Mars/Olympus"}, "timezone: unknown time zone Mars/Olympus"),
        (VALID | {"starts_at": "yesterday"}, "starts_at: invalid time"),
        (VALID | {"timeout": "soon"}, "timeout:"),
        (VALID | {"parent_job": "job1"}, "parent_job: the job can not have itself as parent"),
        ([VALID], "job: must be a JSON object"),
        ("job1", "job: must be a JSON object"),
    ],
)
async def test_invalid_job_is_400_naming_the_field(api: Api, body: object, expected: str) -> None:
    status, answer = await api.json("POST", "/v1/jobs", json=body)
    assert status == 400
    assert answer["error"].startswith(expected), answer
    assert await _stored(api) == 0


async def test_null_means_not_given(api: Api) -> None:
    status, answer = await api.json("POST", "/v1/jobs", json=VALID | {"owner": None, "tags": None})
    assert status == 201
    assert (answer["owner"], answer["tags"]) == ("", {})


async def test_status_untriggered_is_accepted_on_input(api: Api) -> None:
    status, answer = await api.json("POST", "/v1/jobs", json=VALID | {"status": "untriggered"})
    assert (status, answer["status"]) == (201, "")


async def test_unknown_fields_are_ignored_like_dkron(api: Api) -> None:
    status, answer = await api.json("POST", "/v1/jobs", json=VALID | {"command": "legacy"})
    assert status == 201
    assert "command" not in answer


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"name": "job1",', "request body is not valid JSON"),
        (b"", "request body is empty"),
        (b'{"name": "job1", "retries": NaN}', "request body is not valid JSON"),
        (b'{"name": "\xff"}', "request body is not UTF-8 text"),
    ],
)
async def test_malformed_body_is_400(api: Api, data: bytes, expected: str) -> None:
    response = await api.client.post(
        "/v1/jobs", data=data, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert (await response.get_json())["error"].startswith(expected)
    assert await _stored(api) == 0


async def test_body_over_the_limit_is_413(nursery: trio.Nursery) -> None:
    api = await open_api(nursery, body_limit=1000)
    body = VALID | {"displayname": "x" * 1000}
    status, answer = await api.json("POST", "/v1/jobs", json=body)
    assert status == 413
    assert answer == {"error": "request body is larger than the limit of 1000 bytes"}
    assert await _stored(api) == 0
    assert (await api.json("POST", "/v1/jobs", json=VALID))[0] == 201


async def test_unknown_parent_is_404_and_stores_nothing(api: Api) -> None:
    status, answer = await api.json(
        "POST", "/v1/jobs", json=VALID | {"parent_job": "ghost", "schedule": ""}
    )
    assert status == 404
    assert "ghost" in answer["error"]
    assert await _stored(api) == 0


async def test_paused_node_refuses_writes_and_runs_with_503(api: Api) -> None:
    assert (await api.json("POST", "/v1/jobs", json=VALID))[0] == 201
    assert await api.json("POST", "/v1/pause") == (200, {"paused": True})
    status, answer = await api.json("POST", "/v1/jobs", json=VALID | {"name": "job2"})
    assert (status, answer) == (503, {"error": "New job submissions are currently paused"})
    assert (await api.json("PUT", "/v1/jobs/job2", json=VALID | {"name": "job2"}))[0] == 503
    assert (await api.json("PATCH", "/v1/jobs", json=VALID | {"name": "job2"}))[0] == 503
    status, answer = await api.json("POST", "/v1/jobs/job1")
    assert status == 503
    assert "paused" in answer["error"]
    assert (await api.json("POST", "/v1/jobs/job1?force=true"))[0] == 202
    assert (await api.json("POST", "/v1/jobs/job1/toggle"))[0] == 200
    assert await _stored(api) == 1
    assert await api.json("POST", "/v1/unpause") == (200, {"paused": False})
    assert (await api.json("POST", "/v1/jobs", json=VALID | {"name": "job2"}))[0] == 201


class _Leaderless:
    def members(self) -> list[Member]:
        return [Member(NODE, "127.0.0.1", 8946, NODE_TAGS)]

    def leader(self) -> Member | None:
        return None

    def is_leader(self) -> bool:
        return False


async def test_no_leader_means_503_for_writes_and_404_for_leader(api: Api) -> None:
    deps = make_deps(api.store, api.runs, api.scheduler, api.clock, [], cluster=_Leaderless())
    client = create_app(deps).test_client()
    response = await client.post("/v1/jobs", json=VALID)
    assert response.status_code == 503
    assert "leader" in (await response.get_json())["error"]
    response = await client.get("/v1/leader")
    assert (response.status_code, await response.get_json()) == (
        404,
        {"error": "no cluster leader"},
    )
    response = await client.get("/v1/isleader")
    assert (response.status_code, await response.get_json()) == (404, "I am a follower")
    assert await _stored(api) == 0


async def test_wrong_method_is_405_json_with_allow(api: Api) -> None:
    response = await api.client.delete("/v1/jobs")
    assert response.status_code == 405
    assert response.headers["Allow"]
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST", "PATCH"}
    assert (await response.get_json())["error"].startswith("method DELETE not allowed on /v1/jobs")


async def test_unknown_path_is_404_json(api: Api) -> None:
    response = await api.client.get("/v1/nothing/here")
    assert response.status_code == 404
    assert await response.get_json() == {"error": "not found: /v1/nothing/here"}
    assert response.headers["X-Whom"] == NODE


class _BrokenStore(MemoryStore):
    async def get_job(self, name: str) -> Job:
        raise RuntimeError("boom")


async def test_unexpected_failure_is_500_json(api: Api) -> None:
    deps = make_deps(_BrokenStore(), api.runs, api.scheduler, api.clock, [])
    response = await create_app(deps).test_client().get("/v1/jobs/job1")
    assert response.status_code == 500
    assert await response.get_json() == {"error": "internal error: RuntimeError"}
