"""GET /v1/backup and `dkron-trio backup FILE`: the state image, whole and consistent."""

from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from dkron_trio.cli import main
from dkron_trio.http.app import create_app
from dkron_trio.store.base import ExecutionQuery, JobQuery
from dkron_trio.store.memory import MemoryStore
from tests.e2e.process import free_port
from tests.http.harness import Api, make_deps


async def test_backup_answers_the_state_image(api: Api) -> None:
    assert (await api.put(name="kept")).status_code == 201
    app = create_app(
        make_deps(
            api.store, api.runs, api.scheduler, api.clock, [], state_image=api.store.snapshot_image
        )
    )
    response = await app.test_client().get("/v1/backup")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    applied, _ = await api.store.snapshot_image()
    assert response.headers["X-Dkron-Applied-Index"] == str(applied)
    restored = MemoryStore()
    await restored.restore_image(await response.get_data(as_text=False))
    assert [j.name for j in (await restored.list_jobs(JobQuery())).jobs] == ["kept"]
    assert await restored.list_executions("kept", ExecutionQuery()) == []


async def test_backup_on_a_node_without_state_is_501(api: Api) -> None:
    status, body = await api.json("GET", "/v1/backup")
    assert status == 501
    assert "no state image" in body["error"]


async def test_backup_command_writes_the_image(api: Api, tmp_path: Path) -> None:
    assert (await api.put(name="saved")).status_code == 201
    app = create_app(
        make_deps(
            api.store, api.runs, api.scheduler, api.clock, [], state_image=api.store.snapshot_image
        )
    )
    port = free_port()
    config = HypercornConfig()
    config.bind = [f"127.0.0.1:{port}"]
    target = tmp_path / "state.backup"
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, app, config)
        code = await trio.to_thread.run_sync(
            main, ["backup", str(target), "--address", f"http://127.0.0.1:{port}"]
        )
        nursery.cancel_scope.cancel()
    assert code == 0
    assert not target.with_name("state.backup.partial").exists()
    restored = MemoryStore()
    await restored.restore_image(target.read_bytes())
    assert [j.name for j in (await restored.list_jobs(JobQuery())).jobs] == ["saved"]
