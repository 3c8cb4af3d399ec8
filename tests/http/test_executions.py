"""Executions in process: list (sort, order, output limit), delete, show, live output, busy,
cancel, the missed-tick ledger and the follow WebSocket."""

import json
from typing import Any

import pytest
import trio
import trio.testing
from quart.testing.connections import WebsocketResponseError

from dkron_trio.execution import Execution
from dkron_trio.store.base import ExecutionQuery
from tests.http.harness import Api


async def _executions(api: Api, job: str) -> list[Execution]:
    return await api.store.list_executions(job, ExecutionQuery())


async def _wait(api: Api, job: str, *, count: int, finished: bool) -> list[Execution]:
    with trio.fail_after(60):
        while True:
            found = await _executions(api, job)
            if len(found) >= count and (not finished or all(e.status.finished for e in found)):
                return found
            await trio.sleep(0.01)


async def _run(api: Api, job: str, **kwargs: Any) -> None:
    assert (await api.json("POST", f"/v1/jobs/{job}", **kwargs))[0] == 202


async def _ran_three_times(api: Api) -> list[Execution]:
    await api.put(name="job1", schedule="@manually")
    api.executor.outputs["job1"] = [b"hello ", b"world\n"]
    for count in (1, 2, 3):
        await _run(api, "job1")
        await _wait(api, "job1", count=count, finished=True)
        await trio.sleep(0.002)
    return await _executions(api, "job1")


async def test_list_sorted_newest_first_by_default(api: Api) -> None:
    stored = await _ran_three_times(api)
    response = await api.client.get("/v1/jobs/job1/executions")
    assert response.status_code == 200
    assert response.headers["X-Total-Count"] == "3"
    body = await response.get_json()
    ids = [e["id"] for e in body]
    assert ids == [e.id for e in sorted(stored, key=lambda e: e.started_at, reverse=True)]
    assert body[0]["output"] == "hello world\n"
    assert body[0]["output_truncated"] is False
    _, ascending = await api.json("GET", "/v1/jobs/job1/executions?_sort=id&_order=ASC")
    assert [e["id"] for e in ascending] == ids[::-1]
    _, by_end = await api.json("GET", "/v1/jobs/job1/executions?_sort=finished_at")
    assert [e["id"] for e in by_end] == ids


async def test_list_output_size_limit_keeps_the_tail(api: Api) -> None:
    await _ran_three_times(api)
    status, body = await api.json("GET", "/v1/jobs/job1/executions?output_size_limit=6")
    assert status == 200
    assert {(e["output"], e["output_truncated"]) for e in body} == {("world\n", True)}


@pytest.mark.parametrize(
    ("query", "param"),
    [("_sort=bogus", "_sort"), ("_order=sideways", "_order"), ("output_size_limit=0", "output")],
)
async def test_list_rejects_bad_parameters(api: Api, query: str, param: str) -> None:
    await api.put(name="job1")
    status, body = await api.json("GET", f"/v1/jobs/job1/executions?{query}")
    assert status == 400
    assert body["error"].startswith(param)


async def test_list_of_unknown_job_is_404(api: Api) -> None:
    status, body = await api.json("GET", "/v1/jobs/nope/executions")
    assert (status, body) == (404, {"error": "job 'nope' not found"})


async def test_delete_executions_resets_counters(api: Api) -> None:
    await _ran_three_times(api)
    assert (await api.store.get_job("job1")).success_count == 3
    status, job = await api.json("DELETE", "/v1/jobs/job1/executions")
    assert status == 200
    assert (job["success_count"], job["error_count"], job["last_success"]) == (0, 0, None)
    assert await _executions(api, "job1") == []
    assert (await api.json("DELETE", "/v1/jobs/nope/executions"))[0] == 404


async def test_show_one_execution_and_unknowns(api: Api) -> None:
    stored = await _ran_three_times(api)
    status, body = await api.json("GET", f"/v1/jobs/job1/executions/{stored[0].id}")
    assert (status, body["id"], body["output"]) == (200, stored[0].id, "hello world\n")
    assert (await api.json("GET", "/v1/jobs/job1/executions/123-node1"))[0] == 404
    assert (await api.json("GET", f"/v1/jobs/nope/executions/{stored[0].id}"))[0] == 404


async def test_running_execution_shows_live_output_and_is_busy(api: Api) -> None:
    await api.put(name="job1", schedule="@manually")
    api.executor.outputs["job1"] = [b"so far\n"]
    gate = api.executor.gate("job1")
    await _run(api, "job1")
    [running] = await _wait(api, "job1", count=1, finished=False)
    _, shown = await api.json("GET", f"/v1/jobs/job1/executions/{running.id}")
    assert (shown["status"], shown["output"]) == ("running", "so far\n")
    assert shown["finished_at"] == "0001-01-01T00:00:00Z"
    _, listed = await api.json("GET", "/v1/jobs/job1/executions?output_size_limit=4")
    assert (listed[0]["output"], listed[0]["output_truncated"]) == ("far\n", True)
    response = await api.client.get("/v1/busy")
    assert response.headers["X-Total-Count"] == "1"
    [busy] = await response.get_json()
    assert (busy["id"], busy["output"]) == (running.id, "so far\n")
    gate.set()
    await _wait(api, "job1", count=1, finished=True)
    assert await api.json("GET", "/v1/busy") == (200, [])


async def test_cancel_a_running_execution(api: Api) -> None:
    await api.put(name="job1", schedule="@manually")
    api.executor.gate("job1")
    await _run(api, "job1")
    [running] = await _wait(api, "job1", count=1, finished=False)
    path = f"/v1/jobs/job1/executions/{running.id}/cancel"
    status, body = await api.json("POST", path)
    assert (status, body["id"], body["status"]) == (202, running.id, "running")
    [done] = await _wait(api, "job1", count=1, finished=True)
    assert done.status.value == "cancelled"
    status, body = await api.json("POST", path)
    assert status == 409
    assert "already finished (cancelled)" in body["error"]
    assert (await api.json("POST", "/v1/jobs/job1/executions/1-x/cancel"))[0] == 404


async def test_missed_ticks_while_paused(api: Api, autojump_clock: trio.testing.MockClock) -> None:
    await api.put(name="job1", schedule="@every 10s")
    await api.json("POST", "/v1/pause")
    await trio.sleep(25)
    response = await api.client.get("/v1/jobs/job1/missed")
    assert response.status_code == 200
    assert response.headers["X-Total-Count"] == "2"
    missed = await response.get_json()
    assert [m["reason"] for m in missed] == ["paused", "paused"]
    assert missed[0]["scheduled_at"] > missed[1]["scheduled_at"]
    assert await _executions(api, "job1") == []
    status, one = await api.json("GET", "/v1/jobs/job1/missed?limit=1")
    assert (status, len(one)) == (200, 1)
    assert (await api.json("GET", "/v1/jobs/job1/missed?limit=0"))[0] == 400
    assert (await api.json("GET", "/v1/jobs/nope/missed"))[0] == 404


# ---- follow (WebSocket) --------------------------------------------------------------


async def test_follow_streams_output_then_the_finished_execution(api: Api) -> None:
    await api.put(name="job1", schedule="@manually")
    feed = api.executor.feed("job1")
    await _run(api, "job1")
    [running] = await _wait(api, "job1", count=1, finished=False)
    path = f"/v1/jobs/job1/executions/{running.id}/follow"
    async with api.client.websocket(path) as ws:
        assert json.loads(await ws.receive()) == {"type": "output", "data": "ok\n"}
        await feed.send(b"two\n")
        assert json.loads(await ws.receive()) == {"type": "output", "data": "two\n"}
        await feed.send("é".encode()[:1])
        await feed.send("é\n".encode()[1:])
        await feed.aclose()
        text = ""
        while True:
            message = json.loads(await ws.receive())
            if message["type"] == "done":
                break
            text += message["data"]
        assert text == "é\n"
        assert message["execution"]["status"] == "success"
        assert message["execution"]["output"] == "ok\ntwo\né\n"


async def test_follow_on_the_execution_path_of_a_finished_execution(api: Api) -> None:
    [first, *_] = await _ran_three_times(api)
    async with api.client.websocket(f"/v1/jobs/job1/executions/{first.id}") as ws:
        assert json.loads(await ws.receive()) == {"type": "output", "data": "hello world\n"}
        done = json.loads(await ws.receive())
        assert (done["type"], done["execution"]["id"]) == ("done", first.id)


async def test_follow_of_an_unknown_execution_is_refused_with_404(api: Api) -> None:
    await api.put(name="job1")
    refused: list[BaseException] = []
    try:
        async with api.client.websocket("/v1/jobs/job1/executions/1-x/follow") as ws:
            await ws.receive()
    except* WebsocketResponseError as group:
        refused.extend(group.exceptions)
    [error] = refused
    assert isinstance(error, WebsocketResponseError)
    assert error.response.status_code == 404
    assert json.loads(await error.response.get_data()) == {
        "error": "execution '1-x' of job 'job1' not found"
    }


async def test_follow_path_without_upgrade_is_400(api: Api) -> None:
    response = await api.client.get("/v1/jobs/job1/executions/1-x/follow")
    assert response.status_code == 400
    assert "error" in await response.get_json()
