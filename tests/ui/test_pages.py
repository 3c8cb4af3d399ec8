"""The UI's pages in process (the real app over the memory store, no browser): what each
page reads from the store, run manager, scheduler and cluster view."""

from importlib import resources

import pytest
import trio

from dkron_trio.execution import MissedTick, MissReason
from tests.e2e.process import wait_for
from tests.http.harness import T0, Api, open_api


@pytest.fixture
async def api(nursery: trio.Nursery) -> Api:
    return await open_api(nursery)


async def _page(api: Api, path: str, status: int = 200) -> str:
    response = await api.client.get(path)
    assert response.status_code == status, path
    assert response.mimetype == "text/html"
    text: str = await response.get_data(as_text=True)
    return text


async def _failed(api: Api, name: str) -> bool:
    return (await api.store.get_job(name)).last_error is not None


async def _succeeded(api: Api, name: str) -> bool:
    return (await api.store.get_job(name)).success_count > 0


async def _running(api: Api) -> bool:
    return bool(api.runs.running())


async def test_root_redirects_to_the_ui(api: Api) -> None:
    response = await api.client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/ui/"
    assert "<h1>Dashboard" in await _page(api, "/ui")


async def test_dashboard_shows_leader_counts_running_and_failures(api: Api) -> None:
    await api.put(name="good", schedule="@manually")
    await api.put(name="bad", schedule="@manually")
    await api.put(name="slow", schedule="@manually")
    await api.put(name="off", schedule="@manually", disabled=True)
    api.executor.failing.add("bad")
    gate = api.executor.gate("slow")
    for name in ("good", "bad", "slow"):
        assert (await api.client.post(f"/v1/jobs/{name}/run")).status_code == 202
    await wait_for(lambda: _failed(api, "bad"), within=10, what="bad to fail")
    page = await _page(api, "/ui/")
    assert "Leader: <strong>node1</strong>" in page
    assert '<span class="num">4</span> jobs' in page
    assert '<span class="num">1</span> failed' in page
    assert '<span class="num">1</span> disabled' in page
    assert '<span class="num">1</span> executions running' in page
    assert 'href="/ui/jobs/slow"' in page
    recent = page.split('id="fail-h"', 1)[1]
    assert 'href="/ui/jobs/bad"' in recent
    assert 'href="/ui/jobs/good"' not in recent
    gate.set()


async def test_jobs_list_filters_pages_and_names_ignored_values(api: Api) -> None:
    for index in range(7):
        await api.put(name=f"job{index}", metadata={"team": "a" if index < 5 else "b"})
    page = await _page(api, "/ui/jobs?meta=team=a&per_page=25&sort=name&order=desc")
    assert "Jobs 1\N{EN DASH}5 of 5" in page
    assert page.index('value="job4"') < page.index('value="job0"')
    assert "job5" not in page
    await api.put(name="tagged", tags={"kind": "worker:1"})
    page = await _page(api, "/ui/jobs?tags=kind%3Dworker%3A1")
    assert "Jobs 1\N{EN DASH}1 of 1" in page
    assert 'value="tagged"' in page
    page = await _page(api, "/ui/jobs?status=nope&page=zero")
    assert "unknown status &#39;nope&#39; ignored" in page
    assert "Jobs 1\N{EN DASH}8 of 8" in page


async def test_job_page_shows_fields_fire_times_executions_and_missed_ticks(api: Api) -> None:
    await api.put(name="berlin", schedule="0 0 9 * * *", timezone="Europe/Berlin")
    await api.store.record_missed(
        MissedTick("berlin", T0, MissReason.OVERLAP, T0, "still running from 08:00")
    )
    api.executor.outputs["berlin"] = [b"x" * 5000, b"THE END\n"]
    assert (await api.client.post("/v1/jobs/berlin/run")).status_code == 202
    await wait_for(lambda: _succeeded(api, "berlin"), within=10, what="berlin to succeed")
    page = await _page(api, "/ui/jobs/berlin")
    assert page.count("09:00:00 CET (UTC+0100)</time>") == 5
    assert "<dt>misfire_grace</dt>" in page
    assert "still running from 08:00" in page
    assert 'class="badge r-overlap"' in page
    assert "THE END" in page
    assert "Load full output" in page
    assert 'data-url="/v1/jobs/berlin/toggle"' in page


async def test_form_prefills_the_job_and_the_busy_page_lists_runs(api: Api) -> None:
    notify = {"emails": [{"to": ["ops@example.com"]}]}
    await api.put(name="edit-me", tags={"role": "dkron"}, retries=2, notify=notify)
    form = await _page(api, "/ui/jobs/edit-me/edit")
    assert 'name="notify" data-kind="json"' in form
    assert "ops@example.com" in form
    assert 'data-api="/v1/jobs/edit-me"' in form
    assert 'data-method="PUT"' in form
    assert "&#34;role&#34;: &#34;dkron&#34;" in form
    assert 'name="retries" data-kind="int"' in form
    assert 'data-method="POST"' in await _page(api, "/ui/new")
    api.executor.gate("edit-me")
    await api.client.post("/v1/jobs/edit-me/run")
    await wait_for(lambda: _running(api), within=10, what="edit-me to run")
    busy = await _page(api, "/ui/busy")
    assert "1 execution running" in busy
    api.executor.gate("edit-me").set()


async def test_unknown_job_is_an_html_404(api: Api) -> None:
    page = await _page(api, "/ui/jobs/missing", 404)
    assert "job &#39;missing&#39; not found" in page


async def test_static_files_and_templates_ship_inside_the_package(api: Api) -> None:
    ui = resources.files("dkron_trio.http.ui")
    for name in ("static/ui.js", "static/ui.css", "templates/ui/base.html"):
        assert ui.joinpath(name).is_file()
    response = await api.client.get("/ui/static/ui.js")
    assert response.status_code == 200
    assert "WebSocket" in await response.get_data(as_text=True)
