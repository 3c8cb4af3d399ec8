"""The README's Quickstart run command, as a new user runs it: a fresh venv, pip install, start."""

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import trio

from tests.e2e.process import free_port

ROOT = Path(__file__).resolve().parents[2]


def _quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.S)


def test_readme_has_exactly_two_quickstart_commands() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2
    assert commands[1].strip() == "bash scripts/test"
    assert (ROOT / ".ci" / "run").read_text().count("scripts/test") == 1


@pytest.mark.slow
async def test_quickstart_run_command_starts_a_working_server(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is needed to copy the tracked files")
    checkout = tmp_path / "dkron-trio"
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / name.decode()
        if src.is_file():
            dst = checkout / name.decode()
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    port = free_port()
    log = (tmp_path / "quickstart.log").open("wb")
    proc = subprocess.Popen(
        ["bash", "-c", _quickstart_commands()[0]],
        cwd=checkout,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "DKRON_HTTP_ADDR": f"127.0.0.1:{port}"},
        start_new_session=True,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            health: httpx.Response | None = None
            with trio.move_on_after(300):
                while proc.poll() is None:
                    try:
                        health = await client.get("/health")
                        break
                    except httpx.TransportError:
                        await trio.sleep(0.2)
            assert proc.poll() is None, (tmp_path / "quickstart.log").read_text()[-3000:]
            assert health is not None, "no answer within 300 s"
            assert health.json() == {"status": "healthy"}
            created = await client.post(
                "/v1/jobs",
                json={
                    "name": "hello",
                    "schedule": "@manually",
                    "executor": "shell",
                    "executor_config": {"command": "echo hi"},
                },
            )
            assert created.status_code == 201, created.text
        assert (checkout / "dkron.data" / "state.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
