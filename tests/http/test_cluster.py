"""Node and cluster endpoints, and what every answer shares: X-Whom, CORS, ?pretty,
trailing slashes."""

import pytest

from tests.http.harness import NODE, NODE_TAGS, Api


async def test_health(api: Api) -> None:
    assert await api.json("GET", "/health") == (200, {"status": "healthy"})


@pytest.mark.parametrize("path", ["/v1", "/v1/"])
async def test_status(api: Api, path: str) -> None:
    status, body = await api.json("GET", path)
    assert status == 200
    assert body == {
        "agent": {"name": NODE, "version": "0.1.0"},
        "serf": {"members": "1", "failed": "0", "left": "0"},
        "tags": NODE_TAGS,
    }


async def test_members_in_dkron_shape(api: Api) -> None:
    response = await api.client.get("/v1/members")
    assert response.status_code == 200
    assert response.headers["X-Total-Count"] == "1"
    [member] = await response.get_json()
    assert member == {
        "Name": NODE,
        "Addr": "127.0.0.1",
        "Port": 8946,
        "Tags": NODE_TAGS,
        "Status": 1,
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
        "id": NODE,
        "statusText": "alive",
    }


async def test_leader_and_isleader(api: Api) -> None:
    status, leader = await api.json("GET", "/v1/leader")
    assert (status, leader["Name"]) == (200, NODE)
    assert await api.json("GET", "/v1/isleader") == (200, "I am a leader")


async def test_leave_answers_members_and_asks_the_agent_to_stop(api: Api) -> None:
    status, body = await api.json("POST", "/v1/leave")
    assert status == 200
    assert [m["Name"] for m in body] == [NODE]
    assert len(api.leaves) == 1


async def test_pause_state_round_trip(api: Api) -> None:
    assert await api.json("GET", "/v1/pause") == (200, {"paused": False})
    assert await api.json("POST", "/v1/pause") == (200, {"paused": True})
    assert await api.json("GET", "/v1/pause") == (200, {"paused": True})
    assert api.scheduler.paused
    assert await api.json("POST", "/v1/unpause") == (200, {"paused": False})
    assert not api.scheduler.paused


async def test_busy_is_empty_when_idle(api: Api) -> None:
    response = await api.client.get("/v1/busy")
    assert (response.status_code, response.headers["X-Total-Count"]) == (200, "0")


# ---- shared behaviour ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/jobs"), ("GET", "/v1/jobs/nope"), ("DELETE", "/v1/leader"), ("GET", "/x")],
)
async def test_every_answer_names_the_node_and_allows_cors(
    api: Api, method: str, path: str
) -> None:
    response = await api.request(method, path)
    assert response.headers["X-Whom"] == NODE
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "X-Total-Count" in response.headers["Access-Control-Expose-Headers"]


async def test_preflight_is_answered_for_any_path(api: Api) -> None:
    response = await api.client.options(
        "/v1/jobs/job1",
        headers={
            "Origin": "http://ui.example",
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "content-type, x-dkron-token",
        },
    )
    assert response.status_code == 204
    assert "DELETE" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "content-type, x-dkron-token"
    assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_pretty_indents_the_json(api: Api) -> None:
    compact = await (await api.client.get("/health")).get_data()
    pretty = await (await api.client.get("/health?pretty")).get_data()
    assert compact == b'{"status":"healthy"}'
    assert pretty == b'{\n    "status": "healthy"\n}'


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/jobs/", 200),
        ("GET", "/v1/jobs/job1/", 200),
        ("GET", "/v1/jobs/job1/executions/", 200),
        ("GET", "/v1/members/", 200),
        ("POST", "/v1/jobs/job1/toggle/", 200),
        ("GET", "/health/", 200),
    ],
)
async def test_trailing_slashes_are_tolerated(
    api: Api, method: str, path: str, status: int
) -> None:
    await api.put(name="job1")
    response = await api.request(method, path)
    assert response.status_code == status
