"""The zipapp runs on a bare Python: built with shiv, started with the system python3 and a
clean environment from a directory with no virtualenv, it serves the API, the UI and runs a
job."""

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.process import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _bare_python() -> str:
    """A python3 that is not this test's virtualenv (the zipapp must bring every package)."""
    for candidate in ("/usr/bin/python3", shutil.which("python3", path="/usr/local/bin:/usr/bin")):
        if (
            candidate
            and Path(candidate).exists()
            and Path(candidate).resolve() != Path(sys.executable).resolve()
        ):
            return candidate
    pytest.fail("no system python3 outside the virtualenv")


@pytest.mark.slow
async def test_zipapp_runs_a_server_on_a_bare_python(tmp_path: Path) -> None:
    pyz = tmp_path / "dkron-trio.pyz"
    built = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_zipapp.py"), "--output", str(pyz)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    python = _bare_python()
    workdir = tmp_path / "work"
    workdir.mkdir()
    port, rpc, gossip = free_port(), free_port(), free_port()
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "home"),
        "SHIV_ROOT": str(tmp_path / "shiv"),
        "PYTHONUNBUFFERED": "1",
    }
    log_path = tmp_path / "agent.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                python,
                "-I",
                str(pyz),
                "agent",
                "--server",
                "--http-addr",
                f"127.0.0.1:{port}",
                "--rpc-port",
                str(rpc),
                "--bind-addr",
                f"127.0.0.1:{gossip}",
            ],
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def logs() -> str:
        return log_path.read_text(errors="replace")[-4000:]

    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            async def healthy() -> bool:
                assert proc.poll() is None, logs()
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(healthy, within=120, what="the zipapp's server to answer")
            created = await client.post(
                "/v1/jobs",
                json={
                    "name": "from-pyz",
                    "schedule": "@manually",
                    "executor": "shell",
                    "executor_config": {"command": "echo zipapp-ok"},
                },
            )
            assert created.status_code == 201, created.text
            ran = await client.post("/v1/jobs/from-pyz/run")
            assert ran.status_code < 300, ran.text

            async def succeeded() -> bool:
                got = await client.get("/v1/jobs/from-pyz/executions")
                return any(e["success"] and "zipapp-ok" in e["output"] for e in got.json())

            await wait_for(succeeded, within=60, what="the job to succeed")
            ui = await client.get("/ui/", follow_redirects=True)
            assert ui.status_code == 200, ui.text
            assert "from-pyz" in (await client.get("/ui/jobs")).text
            assert (await client.get("/ui/static/ui.css")).status_code == 200
        assert (workdir / "dkron.data" / "state.db").exists()
        extensions = list((tmp_path / "shiv").glob("*/site-packages/msgpack/_cmsgpack*.so"))
        assert extensions, "msgpack's C extension was not extracted"
        probe = subprocess.run(
            [
                python,
                "-I",
                "-c",
                "import sys; sys.path.insert(0, sys.argv[1]); "
                "import msgpack; print(msgpack.Packer.__module__)",
                str(extensions[0].parents[1]),
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        assert probe.stdout.strip() == "msgpack._cmsgpack"
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
