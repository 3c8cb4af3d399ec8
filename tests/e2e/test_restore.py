"""Backup under load, ``dkron-trio restore`` into a new data dir, a new single server on it:
the same jobs and executions, and it keeps scheduling (real processes)."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from tests.e2e.cluster import get_json, post_job, wait_for_leader
from tests.e2e.process import AgentProcess, free_port, wait_for

JOB_MOVING = {"success_count", "error_count", "last_success", "last_error", "status", "next"}
"""Job fields that runs after the backup legitimately change."""
OUTCOME = {
    "started_at",
    "finished_at",
    "success",
    "output",
    "status",
    "exit_code",
    "output_truncated",
}
"""Fields of an execution running at backup time that its start (a run planned ahead records
when it really began) and its end (or loss) change."""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dkron_trio", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _executions(agent: AgentProcess, job: str) -> list[dict[str, Any]]:
    found = await get_json(agent, f"/v1/jobs/{job}/executions")
    return list(found or [])


def _without(obj: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys}


async def test_backup_under_load_restores_into_a_new_single_server(tmp_path: Path) -> None:
    old = AgentProcess(tmp_path / "old" / "dkron.data", free_port(), node_name="old")
    new = AgentProcess(
        tmp_path / "new" / "dkron.data",
        free_port(),
        node_name="new",
        extra_args=("--run-lease", "2s"),
    )
    old.start()
    try:
        await wait_for_leader([old])
        for job in (
            {
                "name": "tick",
                "schedule": "@every 1s",
                "executor": "shell",
                "executor_config": {"command": "echo tick"},
                "metadata": {"team": "ops"},
            },
            {
                "name": "manual",
                "schedule": "@manually",
                "executor": "shell",
                "executor_config": {"command": "true"},
                "disabled": True,
            },
        ):
            response = await post_job(old, job)
            assert response is not None and response.status_code == 201, response

        async def ran(agent: AgentProcess, node: str, n: int) -> bool:
            done = [
                e
                for e in await _executions(agent, "tick")
                if e["node_name"] == node and e["status"] == "success"
            ]
            return len(done) >= n

        await wait_for(lambda: ran(old, "old", 3), within=30, what="3 runs on old", agent=old)
        image = tmp_path / "state.backup"
        backup = await trio.to_thread.run_sync(_cli, "backup", str(image), "--address", old.url)
        assert backup.returncode == 0, backup.stderr

        args = (
            "restore",
            str(image),
            "--data-dir",
            str(new.data_dir),
            "--node-name",
            new.node_name,
            "--rpc-port",
            str(new.rpc_port),
            "--bind-addr",
            new.gossip_address,
        )
        restored = await trio.to_thread.run_sync(_cli, *args)
        assert restored.returncode == 0, restored.stderr
        again = await trio.to_thread.run_sync(_cli, *args)
        assert again.returncode == 1
        assert "not empty" in again.stderr

        new.start()
        await wait_for_leader([new])
        restored_runs = [e for e in await _executions(new, "tick") if e["node_name"] == "old"]
        old_jobs = {j["name"]: j for j in await get_json(old, "/v1/jobs")}
        old_runs = {e["id"]: e for e in await _executions(old, "tick")}
    finally:
        old.stop_quietly()
    try:
        assert len(restored_runs) >= 3
        for execution in restored_runs:
            before = old_runs[execution["id"]]
            if execution["status"] == "running":
                assert _without(execution, OUTCOME) == _without(before, OUTCOME)
            else:
                assert execution == before
        newest = max(e["group"] for e in restored_runs)  # the planned start, which stays
        assert {e["id"] for e in restored_runs} == {
            i for i, e in old_runs.items() if e["group"] <= newest
        }

        new_jobs = {j["name"]: j for j in await get_json(new, "/v1/jobs")}
        assert new_jobs.keys() == old_jobs.keys() == {"tick", "manual"}
        assert new_jobs["manual"] == old_jobs["manual"]
        assert _without(new_jobs["tick"], JOB_MOVING) == _without(old_jobs["tick"], JOB_MOVING)

        await wait_for(lambda: ran(new, "new", 2), within=30, what="2 runs on new", agent=new)
        peers = await trio.to_thread.run_sync(
            _cli, "raft", "list-peers", "--rpc-addr", new.rpc_address
        )
        assert peers.returncode == 0, peers.stderr
        assert "new" in peers.stdout and "old" not in peers.stdout
    finally:
        new.stop_quietly()
