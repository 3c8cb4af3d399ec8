"""Jobs endpoints in process: create/update, list with every filter and sort, show, delete,
toggle, run, restore."""

import io
import json
from datetime import timedelta
from typing import Any

import pytest
import trio
from quart.datastructures import FileStorage

from dkron_trio.execution import ExecutionStatus
from dkron_trio.job import format_time
from dkron_trio.store.base import ExecutionQuery, JobQuery
from tests.http.harness import Api

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


async def _names(api: Api, query: str = "") -> tuple[list[str], str]:
    response = await api.client.get(f"/v1/jobs{query}")
    assert response.status_code == 200, await response.get_data()
    return [j["name"] for j in await response.get_json()], response.headers["X-Total-Count"]


async def _wait_executions(api: Api, job: str, count: int) -> None:
    with trio.fail_after(60):
        while True:
            if len(await api.store.list_executions(job, ExecutionQuery())) >= count:
                return
            await trio.sleep(0.01)


async def _wait_finished(api: Api, job: str) -> None:
    with trio.fail_after(60):
        while True:
            found = await api.store.list_executions(job, ExecutionQuery())
            if found and all(ex.status.finished for ex in found):
                return
            await trio.sleep(0.01)


# ---- create / update ------------------------------------------------------------------


async def test_getting_started_job_is_created_with_location_and_next(api: Api) -> None:
    response = await api.client.post("/v1/jobs", json=GETTING_STARTED)
    assert response.status_code == 201
    assert response.headers["Location"] == "/v1/jobs/job1"
    job = await response.get_json()
    for key, value in GETTING_STARTED.items():
        assert job[key] == value, key
    assert job["id"] == "job1"
    created = api.clock.now()
    stored = await api.store.get_job("job1")
    assert job["next"] == format_time(stored.created_at + timedelta(seconds=10))
    assert stored.created_at <= created
    names, total = await _names(api)
    assert (names, total) == (["job1"], "1")


async def test_update_keeps_created_at_and_counters(api: Api) -> None:
    await api.put(name="job1", owner="a")
    first = await api.store.get_job("job1")
    response = await api.put(name="job1", owner="b", success_count=7)
    assert response.status_code == 201
    body = await response.get_json()
    assert body["owner"] == "b"
    assert body["created_at"] == format_time(first.created_at)
    assert body["success_count"] == 7
    response = await api.put(name="job1", success_count=1)
    assert (await response.get_json())["success_count"] == 7


async def test_patch_is_a_full_upsert(api: Api) -> None:
    body = {"name": "p", "schedule": "@manually", "executor": "shell",
            "executor_config": {"command": "true"}}  # fmt: skip
    response = await api.client.patch("/v1/jobs", json=body)
    assert response.status_code == 201
    assert (await api.store.get_job("p")).schedule == "@manually"


async def test_put_takes_the_name_from_the_path(api: Api) -> None:
    body = {"schedule": "@manually", "executor": "shell", "executor_config": {"command": "x"}}
    response = await api.client.put("/v1/jobs/from-path", json=body)
    assert response.status_code == 201
    assert (await response.get_json())["name"] == "from-path"
    status, error = await api.json("PUT", "/v1/jobs/other", json=body | {"name": "from-path"})
    assert status == 400
    assert error["error"].startswith("name:")
    assert [j.name for j in (await api.store.list_jobs(JobQuery())).jobs] == ["from-path"]


async def test_runoncreate_runs_the_job_once(api: Api) -> None:
    response = await api.client.post("/v1/jobs?runoncreate", json=GETTING_STARTED)
    assert response.status_code == 201
    await _wait_executions(api, "job1", 1)
    [execution] = await api.store.list_executions("job1", ExecutionQuery())
    assert execution.scheduled_at is not None


async def test_runoncreate_of_a_disabled_job_stores_it_without_running(api: Api) -> None:
    response = await api.client.post(
        "/v1/jobs?runoncreate=true", json=GETTING_STARTED | {"disabled": True}
    )
    assert response.status_code == 201
    assert (await response.get_json())["next"] is None
    assert api.executor.started == []


# ---- list: filters, sort, paging ------------------------------------------------------


async def _fixture_jobs(api: Api) -> None:
    await api.put(name="alpha", displayname="Zulu", metadata={"team": "a", "env": "prod"})
    await api.put(name="bravo", displayname="Yankee", metadata={"team": "a", "env": "dev"})
    await api.put(name="charlie", displayname="alpha-ish", metadata={"team": "b"}, disabled=True)
    await api.put(name="delta", schedule="@manually", retries=3)


async def test_list_filters_by_metadata_pairs(api: Api) -> None:
    await _fixture_jobs(api)
    assert await _names(api, "?metadata[team]=a") == (["alpha", "bravo"], "2")
    assert await _names(api, "?metadata[team]=a&metadata[env]=prod") == (["alpha"], "1")
    assert await _names(api, "?metadata[team]=c") == ([], "0")


async def test_list_q_searches_name_and_displayname(api: Api) -> None:
    await _fixture_jobs(api)
    assert await _names(api, "?q=ALPHA") == (["alpha", "charlie"], "2")
    assert await _names(api, "?q=yank") == (["bravo"], "1")


async def test_list_filters_by_disabled(api: Api) -> None:
    await _fixture_jobs(api)
    assert await _names(api, "?disabled=true") == (["charlie"], "1")
    assert await _names(api, "?disabled=false") == (["alpha", "bravo", "delta"], "3")


async def test_list_filters_by_status(api: Api) -> None:
    await _fixture_jobs(api)
    api.executor.failing.add("bravo")
    assert (await api.client.post("/v1/jobs/alpha")).status_code == 202
    assert (await api.client.post("/v1/jobs/bravo")).status_code == 202
    await _wait_finished(api, "alpha")
    await _wait_finished(api, "bravo")
    assert await _names(api, "?status=success") == (["alpha"], "1")
    assert await _names(api, "?status=failed") == (["bravo"], "1")
    assert await _names(api, "?status=untriggered") == (["charlie", "delta"], "2")
    assert await _names(api, "?status=partially_failed") == ([], "0")


async def test_list_sorts_and_orders(api: Api) -> None:
    await _fixture_jobs(api)
    assert (await _names(api, "?_sort=displayname"))[0] == ["delta", "bravo", "alpha", "charlie"]
    assert (await _names(api, "?_sort=id&_order=DESC"))[0] == [
        "delta",
        "charlie",
        "bravo",
        "alpha",
    ]
    assert (await _names(api, "?_sort=retries&_order=desc"))[0][0] == "delta"
    assert (await _names(api, "?_sort=name&_order=asc"))[0] == [
        "alpha",
        "bravo",
        "charlie",
        "delta",
    ]


async def test_list_pages_with_start_and_end_and_counts_before_paging(api: Api) -> None:
    await _fixture_jobs(api)
    assert await _names(api, "?_start=1&_end=3") == (["bravo", "charlie"], "4")
    assert await _names(api, "?_start=3") == (["delta"], "4")
    assert await _names(api, "?_end=1&_order=DESC") == (["delta"], "4")
    assert await _names(api, "?_start=9") == ([], "4")


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("_sort=bogus", "_sort"),
        ("_order=up", "_order"),
        ("disabled=maybe", "disabled"),
        ("_start=-1", "_start"),
        ("_end=x", "_end"),
        ("status=weird", "status"),
    ],
)
async def test_list_rejects_bad_parameters_naming_them(api: Api, query: str, param: str) -> None:
    status, body = await api.json("GET", f"/v1/jobs?{query}")
    assert status == 400
    assert body["error"].startswith(f"{param}:")


# ---- show / delete / toggle -----------------------------------------------------------


async def test_show_and_unknown_job(api: Api) -> None:
    await api.put(name="job1")
    status, body = await api.json("GET", "/v1/jobs/job1")
    assert (status, body["name"]) == (200, "job1")
    status, body = await api.json("GET", "/v1/jobs/nope")
    assert (status, body) == (404, {"error": "job 'nope' not found"})


async def test_delete_job_and_children_rule(api: Api) -> None:
    await api.put(name="parent")
    await api.put(name="child", parent_job="parent", schedule="")
    status, body = await api.json("DELETE", "/v1/jobs/parent")
    assert status == 409
    assert "child" in body["error"]
    assert (await api.store.get_job("parent")).dependent_jobs == ("child",)
    status, body = await api.json("DELETE", "/v1/jobs/child")
    assert (status, body["name"]) == (200, "child")
    assert (await api.store.get_job("parent")).dependent_jobs == ()
    assert (await api.json("DELETE", "/v1/jobs/parent"))[0] == 200
    assert (await api.json("DELETE", "/v1/jobs/parent"))[0] == 404


async def test_toggle_flips_disabled_and_next(api: Api) -> None:
    await api.put(name="job1")
    status, body = await api.json("POST", "/v1/jobs/job1/toggle")
    assert (status, body["disabled"], body["next"]) == (200, True, None)
    assert api.scheduler.next_fire("job1") is None
    status, body = await api.json("POST", "/v1/jobs/job1/toggle")
    assert (status, body["disabled"]) == (200, False)
    assert body["next"] == format_time(api.scheduler.next_fire("job1"))  # type: ignore[arg-type]
    assert (await api.json("POST", "/v1/jobs/nope/toggle"))[0] == 404


# ---- run -------------------------------------------------------------------------------


async def test_run_answers_202_at_once_and_the_execution_shows_up(api: Api) -> None:
    await api.put(name="job1", schedule="@manually")
    api.executor.gate("job1")
    response = await api.client.post("/v1/jobs/job1")
    assert response.status_code == 202
    assert response.headers["Location"] == "/v1/jobs/job1/executions"
    assert (await response.get_json())["name"] == "job1"
    await _wait_executions(api, "job1", 1)
    _, executions = await api.json("GET", "/v1/jobs/job1/executions")
    assert executions[0]["status"] == "running"
    api.executor.gate("job1").set()
    await _wait_finished(api, "job1")
    assert (await api.json("POST", "/v1/jobs/job1/run"))[0] == 202
    await _wait_executions(api, "job1", 2)


async def test_forbid_refuses_a_manual_run_while_running_unless_forced(api: Api) -> None:
    await api.put(name="job1", schedule="@manually", concurrency="forbid")
    api.executor.gate("job1")
    assert (await api.json("POST", "/v1/jobs/job1"))[0] == 202
    await _wait_executions(api, "job1", 1)
    status, body = await api.json("POST", "/v1/jobs/job1/run")
    assert status == 409
    assert "forbid" in body["error"]
    assert (await api.json("POST", "/v1/jobs/job1/run?force=true"))[0] == 202
    await _wait_executions(api, "job1", 2)
    api.executor.gate("job1").set()
    await _wait_finished(api, "job1")


async def test_run_of_disabled_unknown_or_untargeted_job(api: Api) -> None:
    await api.put(name="off", disabled=True)
    await api.put(name="elsewhere", tags={"zone": "mars"})
    status, body = await api.json("POST", "/v1/jobs/off")
    assert status == 409
    assert "disabled" in body["error"]
    assert (await api.json("POST", "/v1/jobs/off?force=1"))[0] == 202
    assert (await api.json("POST", "/v1/jobs/nope"))[0] == 404
    status, body = await api.json("POST", "/v1/jobs/elsewhere")
    assert status == 409
    assert "tags" in body["error"]
    assert (await api.json("POST", "/v1/jobs/off?force=perhaps"))[0] == 400


# ---- restore -------------------------------------------------------------------------------


def _file(content: bytes) -> dict[str, FileStorage]:
    return {"file": FileStorage(stream=io.BytesIO(content), filename="jobs.json")}


def _job(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "schedule": "@every 1h", "executor": "shell",
            "executor_config": {"command": "true"}} | fields  # fmt: skip


async def test_restore_stores_parents_first(api: Api) -> None:
    jobs = [_job("child", parent_job="parent", schedule=""), _job("parent"), _job("solo")]
    status, body = await api.json("POST", "/v1/restore", files=_file(json.dumps(jobs).encode()))
    assert status == 200
    assert body == ["success create parent", "success create solo", "success create child"]
    assert (await api.store.get_job("parent")).dependent_jobs == ("child",)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (json.dumps([_job("good"), _job("Bad")]).encode(), "file[1].name"),
        (json.dumps([_job("good"), _job("orphan", parent_job="ghost")]).encode(), "orphan."),
        (json.dumps({"name": "x"}).encode(), "file:"),
        (b"not json", "file is not valid JSON"),
        (json.dumps([_job("good"), 5]).encode(), "file[1]"),
        (json.dumps([_job("a", parent_job="b"), _job("b", parent_job="a")]).encode(), "cycle"),
    ],
)
async def test_restore_rejects_the_whole_file(api: Api, content: bytes, field: str) -> None:
    status, body = await api.json("POST", "/v1/restore", files=_file(content))
    assert status == 400
    assert field in body["error"]
    assert (await api.store.list_jobs(JobQuery())).total == 0


async def test_restore_without_file_field(api: Api) -> None:
    status, body = await api.json("POST", "/v1/restore", form={"other": "x"})
    assert status == 400
    assert body["error"].startswith("file:")


async def test_running_job_counts_and_status_after_runs(api: Api) -> None:
    await api.put(name="job1", schedule="@manually")
    for _ in range(2):
        assert (await api.json("POST", "/v1/jobs/job1"))[0] == 202
        await _wait_finished(api, "job1")
    _, body = await api.json("GET", "/v1/jobs/job1")
    assert (body["success_count"], body["status"]) == (2, "success")
    executions = await api.store.list_executions("job1", ExecutionQuery())
    assert {ex.status for ex in executions} == {ExecutionStatus.SUCCESS}
