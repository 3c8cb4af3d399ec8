"""One real agent and one headless Chromium for the whole UI module.

Chromium is Debian's ``/usr/bin/chromium`` driven by the ``playwright`` package (which never
downloads a browser here). Under CI (``CI`` set to anything but "" or "false") a missing
browser or playwright fails the tests; elsewhere it skips them.

Screenshots go to ``$DKRON_UI_ARTIFACTS`` when set (CI keeps them as artefacts), else to a
pytest temporary directory whose path the tests print.
"""

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.e2e.process import AgentProcess, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = os.environ.get("DKRON_UI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_SECONDS = 30.0


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "false", "0")


def _unavailable(reason: str) -> None:
    if under_ci():
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``dkron-trio agent --server`` on a free port; its base URL."""
    root = tmp_path_factory.mktemp("ui-agent")
    data_dir = root / "data"
    data_dir.mkdir()
    agent = AgentProcess(data_dir, free_port(), node_name="ui-node")
    agent.start()
    url = f"http://127.0.0.1:{agent.http_port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            agent.assert_alive()
            try:
                if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"agent did not answer /health:\n{agent.log_text()}")
            time.sleep(0.05)
        yield url
    finally:
        agent.stop_quietly()


@pytest.fixture(scope="module")
def browser() -> Iterator["Browser"]:
    """Headless Chromium (a playwright ``Browser``), shared by the module's tests."""
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 (optional package)
    except ImportError:
        _unavailable("the playwright package is not installed (pip install playwright)")
    if shutil.which(CHROMIUM) is None:
        _unavailable(f"{CHROMIUM} not found (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("DKRON_UI_ARTIFACTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("ui-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"UI screenshots in {folder}")
    return folder
