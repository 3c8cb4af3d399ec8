"""The API over real sockets on 127.0.0.1: hypercorn's Trio worker, graceful shutdown with the
app's shutdown hooks, the body limit, and WebSocket followers that vanish or are told the
server is going away."""

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from dkron_trio.config import HostPort
from dkron_trio.http.server import GRACEFUL_SECONDS, HttpServer, bind_addresses
from dkron_trio.store.base import ExecutionQuery
from tests.http.harness import Api, open_api


@pytest.fixture
async def served(nursery: trio.Nursery) -> AsyncIterator[tuple[Api, HttpServer, str]]:
    api = await open_api(nursery, body_limit=2000)
    server = HttpServer(api.app, HostPort("127.0.0.1", 0))
    [url] = await nursery.start(server.run)
    yield api, server, url
    await server.shutdown()


async def _running_execution(api: Api, job: str) -> str:
    with trio.fail_after(30):
        while True:
            found = await api.store.list_executions(job, ExecutionQuery())
            if found:
                return found[0].id
            await trio.sleep(0.01)


def test_bind_addresses() -> None:
    assert bind_addresses(HostPort("", 8080)) == ["0.0.0.0:8080"]
    assert bind_addresses(HostPort("127.0.0.1", 0)) == ["127.0.0.1:0"]
    assert bind_addresses(HostPort("::1", 8080)) == ["[::1]:8080"]


async def test_serves_over_a_real_socket_and_limits_bodies(
    served: tuple[Api, HttpServer, str],
) -> None:
    _, _, url = served
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/health")
        assert response.json() == {"status": "healthy"}
        assert response.headers["X-Whom"] == "node1"
        big = {"name": "job1", "displayname": "x" * 3000}
        response = await client.post("/v1/jobs", json=big)
        assert response.status_code == 413
        assert response.json() == {"error": "request body is larger than the limit of 2000 bytes"}

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b" " * 500

        response = await client.post("/v1/jobs", content=chunked())
        assert response.status_code == 413


async def test_shutdown_is_graceful_and_runs_shutdown_hooks(nursery: trio.Nursery) -> None:
    api = await open_api(nursery)
    hooks: list[str] = []

    @api.app.after_serving
    async def record() -> None:
        hooks.append("after_serving")

    server = HttpServer(api.app, HostPort("127.0.0.1", 0))
    [url] = await nursery.start(server.run)
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/v1/isleader")).json() == "I am a leader"
    with trio.fail_after(10):
        await server.shutdown()
    assert hooks == ["after_serving"]
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=url) as client:
            await client.get("/health")


async def test_follower_that_disconnects_does_not_hurt_the_server(
    served: tuple[Api, HttpServer, str],
) -> None:
    api, _, url = served
    await api.put(name="job1", schedule="@manually")
    feed = api.executor.feed("job1")
    await api.client.post("/v1/jobs/job1")
    execution = await _running_execution(api, "job1")
    ws_url = url.replace("http://", "ws://") + f"/v1/jobs/job1/executions/{execution}/follow"
    async with open_websocket_url(ws_url) as ws:
        assert json.loads(await ws.get_message()) == {"type": "output", "data": "ok\n"}
    await feed.send(b"more output after the follower left\n")
    async with open_websocket_url(ws_url) as ws:
        first = json.loads(await ws.get_message())
        assert first["data"].endswith("left\n")
        await feed.aclose()
        messages = []
        try:
            while True:
                messages.append(json.loads(await ws.get_message()))
        except ConnectionClosed as closed:
            assert closed.reason is not None
            assert closed.reason.code == 1000
    assert messages[-1]["type"] == "done"
    assert messages[-1]["execution"]["status"] == "success"
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/v1/busy")).json() == []


async def test_followers_are_told_when_the_server_goes_away(nursery: trio.Nursery) -> None:
    api = await open_api(nursery)
    server = HttpServer(api.app, HostPort("127.0.0.1", 0))
    [url] = await nursery.start(server.run)
    await api.put(name="job1", schedule="@manually")
    feed = api.executor.feed("job1")
    await api.client.post("/v1/jobs/job1")
    execution = await _running_execution(api, "job1")
    ws_url = url.replace("http://", "ws://") + f"/v1/jobs/job1/executions/{execution}"
    async with open_websocket_url(ws_url) as ws:
        await ws.get_message()
        nursery.start_soon(server.shutdown)
        with trio.fail_after(3), pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
        assert closed.value.reason is not None
        assert closed.value.reason.code == 1001
    await feed.aclose()


async def test_idle_keep_alive_connection_does_not_hold_shutdown(nursery: trio.Nursery) -> None:
    api = await open_api(nursery)
    server = HttpServer(api.app, HostPort("127.0.0.1", 0))
    [url] = await nursery.start(server.run)
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/health")).status_code == 200
        await trio.sleep(0.1)  # the situation under test: the connection sits idle, kept alive
        with trio.fail_after(GRACEFUL_SECONDS / 2):
            await server.shutdown()
