"""The UI in headless Chromium against a real agent: create a job through the form (after a
validation error shown at its field), run it and follow its live output, cancel a run,
toggle, delete, bulk actions, and the pages at 390 px wide. Screenshots of every page at
1280 and 390 px are saved (see conftest)."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.ui.conftest import under_ci

try:
    from playwright.sync_api import Browser, Dialog, Page, expect
except ImportError:
    if under_ci():
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow

WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}
RUN_SECONDS = 5
TICKS = f"for i in $(seq 1 {RUN_SECONDS}); do echo tick $i; sleep 1; done"
WAIT_MS = 20_000


def _shown(first: int, last: int, total: int) -> str:
    return f"Jobs {first}\N{EN DASH}{last} of {total}"


def _page(browser: Browser, size: dict[str, int]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": size["width"], "height": size["height"]})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.on("dialog", _accept)
    try:
        yield page
    finally:
        context.close()


def _accept(dialog: Dialog) -> None:
    dialog.accept()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from _page(browser, WIDE)


@pytest.fixture
def narrow(browser: Browser) -> Iterator[Page]:
    yield from _page(browser, NARROW)


def _shot(page: Page, shots: Path, name: str, *, full_page: bool = True) -> None:
    width = page.viewport_size["width"] if page.viewport_size else 0
    page.screenshot(path=str(shots / f"{width}-{name}.png"), full_page=full_page)


def _put_job(base_url: str, name: str, **fields: object) -> None:
    body = {
        "name": name,
        "schedule": "@manually",
        "executor": "shell",
        "executor_config": {"command": "echo hello"},
    } | fields
    response = httpx.post(f"{base_url}/v1/jobs", json=body, timeout=10)
    assert response.status_code == 201, response.text


def test_root_redirects_to_the_dashboard(page: Page, base_url: str, shots: Path) -> None:
    page.goto(base_url + "/")
    expect(page).to_have_url(base_url + "/ui/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator("main")).to_contain_text("Leader: ui-node")
    expect(page.get_by_role("cell", name="alive")).to_be_visible()
    _shot(page, shots, "dashboard")


def test_job_lifecycle_through_the_ui(page: Page, base_url: str, shots: Path) -> None:
    page.goto(base_url + "/ui/new")
    page.get_by_label("Name", exact=True).fill("ui-job")
    page.get_by_label("Schedule").fill("every day")
    page.get_by_label("Executor config (JSON object of strings)").fill(
        f'{{"command": "{TICKS}", "shell": "true"}}'
    )
    page.get_by_role("button", name="Create job").click()
    error = page.locator("#err-schedule")
    expect(error).to_be_visible()
    expect(error).to_contain_text("schedule: can't parse job schedule")
    expect(page.locator("#j-schedule")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#j-schedule")).to_be_focused()
    _shot(page, shots, "form-error")

    page.get_by_label("Schedule").fill("@manually")
    page.get_by_role("button", name="Create job").click()
    expect(page).to_have_url(base_url + "/ui/jobs/ui-job")
    expect(page.locator("#notice")).to_contain_text("Saved ui-job.")

    page.goto(base_url + "/ui/jobs?q=ui-")
    expect(page.get_by_role("link", name="ui-job", exact=True)).to_be_visible()
    _shot(page, shots, "jobs")
    page.get_by_role("link", name="ui-job", exact=True).click()

    # Run it and follow its output live: "tick 2" arrives while the WebSocket still follows.
    page.get_by_role("button", name="Run now").click()
    following = page.locator("pre.output.following")
    expect(following).to_contain_text("tick 2")
    _shot(page, shots, "job-running")
    expect(page.locator("pre.output").first).to_contain_text(f"tick {RUN_SECONDS}")
    expect(following).to_have_count(0)
    expect(page.locator("#executions-live .badge.s-success")).to_have_count(1)
    expect(page.locator("#job-badges .s-success")).to_be_visible()

    # A second run, cancelled while it runs.
    page.get_by_role("button", name="Run now").click()
    expect(following).to_contain_text("tick 1")
    page.locator("#executions-live").get_by_role("button", name="Cancel").click()
    expect(page.locator("#executions-live .badge.s-cancelled")).to_have_count(1)
    _shot(page, shots, "job")

    page.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("button", name="Enable")).to_be_visible()
    expect(page.locator("h1 .s-disabled")).to_have_text("disabled")
    job = httpx.get(f"{base_url}/v1/jobs/ui-job", timeout=10).json()
    assert job["disabled"] is True

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Name", exact=True)).to_have_attribute("readonly", "")
    expect(page.get_by_label("Disabled")).to_be_checked()
    page.get_by_label("Display name").fill("The UI job")
    page.get_by_label("Tags (JSON object)").fill("{not json")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#err-tags")).to_contain_text("tags: not valid JSON")
    page.get_by_label("Tags (JSON object)").fill("{}")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="The UI job")).to_be_visible()

    page.get_by_role("button", name="Delete").click()
    expect(page).to_have_url(base_url + "/ui/jobs")
    assert httpx.get(f"{base_url}/v1/jobs/ui-job", timeout=10).status_code == 404


def test_bulk_toggle_and_delete(page: Page, base_url: str) -> None:
    for name in ("bulk-a", "bulk-b", "bulk-c"):
        _put_job(base_url, name)
    page.goto(base_url + "/ui/jobs?q=bulk-")
    expect(page.locator(".count")).to_have_text(_shown(1, 3, 3))
    page.get_by_label("Select bulk-a").check()
    page.get_by_label("Select bulk-b").check()
    expect(page.locator("#selected-count")).to_have_text("2 selected")
    page.get_by_role("button", name="Toggle selected").click()
    expect(page.locator("#notice")).to_contain_text("Toggled 2 of 2 job(s).")
    page.goto(base_url + "/ui/jobs?q=bulk-&disabled=true")
    expect(page.locator(".count")).to_have_text(_shown(1, 2, 2))
    page.get_by_label("Select every job on this page").check()
    page.get_by_role("button", name="Delete selected").click()
    expect(page.locator("#notice")).to_contain_text("Deleted 2 of 2 job(s).")
    names = [j["name"] for j in httpx.get(f"{base_url}/v1/jobs?q=bulk-", timeout=10).json()]
    assert names == ["bulk-c"]


def test_list_pages_sorts_and_filters(page: Page, base_url: str) -> None:
    for index in range(30):
        _put_job(base_url, f"page-{index:02d}", metadata={"team": "odd" if index % 2 else "even"})
    page.goto(base_url + "/ui/jobs?q=page-&per_page=25")
    expect(page.locator(".count")).to_have_text(_shown(1, 25, 30))
    page.get_by_role("link", name="Next page").click()
    expect(page.locator(".count")).to_have_text(_shown(26, 30, 30))
    page.get_by_role("link", name="Name ▲").click()
    expect(page.locator("table.jobs tbody tr").first).to_contain_text("page-29")
    page.get_by_label("Metadata").fill("team=odd")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator(".count")).to_have_text(_shown(1, 15, 15))


def test_keyboard_reaches_search_and_skip_link(page: Page, base_url: str) -> None:
    page.goto(base_url + "/ui/jobs")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    page.keyboard.press("/")
    expect(page.get_by_label("Search")).to_be_focused()
    page.keyboard.type("nothing-matches")
    page.keyboard.press("Enter")
    expect(page.locator(".count")).to_have_text("No jobs match.")


def test_every_page_fits_390_px(narrow: Page, base_url: str, shots: Path) -> None:
    _put_job(base_url, "narrow-job", metadata={"team": "mobile"}, tags={"role": "dkron"})
    httpx.post(f"{base_url}/v1/jobs/narrow-job/run", timeout=10)
    pages = {
        "dashboard": "/ui/",
        "jobs": "/ui/jobs",
        "job": "/ui/jobs/narrow-job",
        "form": "/ui/new",
        "edit": "/ui/jobs/narrow-job/edit",
        "busy": "/ui/busy",
    }
    for name, path in pages.items():
        narrow.goto(base_url + path)
        expect(narrow.locator("h1")).to_be_visible()
        overflow = narrow.evaluate("document.documentElement.scrollWidth")
        assert overflow <= NARROW["width"], f"{path} is {overflow}px wide at 390px"
        _shot(narrow, shots, name, full_page=name != "jobs")


def test_wide_screenshots(page: Page, base_url: str, shots: Path) -> None:
    _put_job(base_url, "wide-job")
    for name, path in {
        "jobs-all": "/ui/jobs",
        "form": "/ui/new",
        "busy": "/ui/busy",
        "wide-job": "/ui/jobs/wide-job",
        "edit": "/ui/jobs/wide-job/edit",
    }.items():
        page.goto(base_url + path)
        expect(page.locator("h1")).to_be_visible()
        _shot(page, shots, name)
