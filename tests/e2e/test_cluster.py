"""Three real servers: election, forwarding, failover, catch-up, and no lost writes."""

import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from tests.e2e.cluster import Cluster, get_json, post_job, wait_for_leader
from tests.e2e.process import wait_for


def _job(name: str, schedule: str = "@manually") -> dict[str, Any]:
    return {
        "name": name,
        "schedule": schedule,
        "executor": "shell",
        "executor_config": {"command": "true"},
    }


async def _has_job(server: Any, name: str) -> bool:
    return await get_json(server, f"/v1/jobs/{name}") is not None


async def test_three_servers_elect_forward_fail_over_and_catch_up(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path, 3, "--raft-snapshot-threshold", "50")
    cluster.start()
    try:
        leader_name = await wait_for_leader(cluster.servers)
        leader = cluster.by_name(leader_name)

        async def gossip_sees_all() -> bool:
            members = await get_json(cluster.servers[0], "/v1/members") or []
            alive = {m["Name"] for m in members if m["statusText"] == "alive"}
            return alive == {"s1", "s2", "s3"} and all(
                m["Tags"].get("server") == "true" and "rpc_addr" in m["Tags"] for m in members
            )

        await wait_for(gossip_sees_all, within=10, what="gossip members", agent=leader)
        followers = [s for s in cluster if s is not leader]

        # A write through a follower is forwarded and appears on every server.
        response = await post_job(followers[0], _job("through-follower"))
        assert response is not None and response.status_code == 201, response
        assert await _has_job(followers[0], "through-follower")  # read-your-write there
        # A consistent read on the other follower sees the acknowledged write at once.
        assert await get_json(followers[1], "/v1/jobs/through-follower?consistent") is not None
        for server in cluster:
            await wait_for(
                partial(_has_job, server, "through-follower"),
                within=10,
                what=f"the job on {server.node_name}",
                agent=server,
            )

        # A scheduled job runs on the leader.
        response = await post_job(leader, _job("ticker", "@every 1s"))
        assert response is not None and response.status_code == 201

        async def ticker_runs(server: Any) -> int:
            body = await get_json(server, "/v1/jobs/ticker")
            return 0 if body is None else int(body["success_count"])

        await wait_for(
            lambda: _more_than(ticker_runs(followers[0]), 1),
            within=20,
            what="ticker runs",
            agent=leader,
        )

        # kill -9 of the leader: the others elect a new one, which takes writes and schedules.
        leader.kill()
        new_leader_name = await wait_for_leader(followers)
        assert new_leader_name != leader_name
        new_leader = cluster.by_name(new_leader_name)
        before = await ticker_runs(new_leader)
        for i in range(60):  # enough entries for a snapshot and compaction on the survivors
            response = await post_job(followers[i % 2], _job(f"while-down-{i}"))
            assert response is not None and response.status_code == 201, response
        await wait_for(
            lambda: _more_than(ticker_runs(new_leader), before + 1),
            within=20,
            what="the scheduler to resume on the new leader",
            agent=new_leader,
        )

        # The killed server restarts and catches up (by snapshot: its log is compacted away).
        leader.start()
        await wait_for(
            lambda: _has_job(leader, "while-down-59"),
            within=30,
            what="the restarted server to catch up",
            agent=leader,
        )
        assert "snapshot" in new_leader.log_text() or "snapshot" in followers[0].log_text()
        # A snapshot's image is a file beside raft.db; older ones go once a newer is recorded.
        files = [len(list(srv.data_dir.glob("raft.db.snapshot-*"))) for srv in cluster.servers]
        assert max(files) == 1, files
    finally:
        cluster.stop()


async def _more_than(value: Any, floor: int) -> bool:
    return int(await value) > floor


async def test_kill_all_and_restart_loses_no_acknowledged_write(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path, 3)
    cluster.start()
    acknowledged: list[str] = []
    try:
        await wait_for_leader(cluster.servers)
        for i in range(30):
            response = await post_job(cluster.servers[i % 3], _job(f"acked-{i}"))
            if response is not None and response.status_code == 201:
                acknowledged.append(f"acked-{i}")
        assert len(acknowledged) == 30
        for server in cluster:
            server.kill()
        time.sleep(0.5)  # the fault itself: everything is down for a moment
        cluster.start()
        await wait_for_leader(cluster.servers)
        for server in cluster:
            for name in acknowledged:
                await wait_for(
                    partial(_has_job, server, name),
                    within=20,
                    what=f"{name} on {server.node_name}",
                    agent=server,
                )

        rpc = cluster.servers[0].rpc_address
        peers = _raft_cli("list-peers", "--rpc-addr", rpc)
        assert [line.split()[0] for line in peers.splitlines()[1:]] == ["s1", "s2", "s3"]
        assert sum("leader" in line for line in peers.splitlines()) == 1
        _raft_cli("remove-peer", "--rpc-addr", rpc, "--peer-id", "s3")
        peers = _raft_cli("list-peers", "--rpc-addr", rpc)
        assert [line.split()[0] for line in peers.splitlines()[1:]] == ["s1", "s2"]
    finally:
        cluster.stop()


def _raft_cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dkron_trio", "raft", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_peers_json_recovers_a_lost_quorum(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path, 3)
    cluster.start()
    try:
        await wait_for_leader(cluster.servers)
        for i in range(5):
            response = await post_job(cluster.servers[i % 3], _job(f"kept-{i}"))
            assert response is not None and response.status_code == 201
        for server in cluster:
            server.kill()
        # s2 and s3 are gone for good; s1 alone cannot elect a leader without recovery.
        survivor = cluster.servers[0]
        peers = [{"id": "s1", "address": survivor.rpc_address}]
        (survivor.data_dir / "peers.json").write_text(json.dumps(peers))
        survivor.start()
        await wait_for_leader([survivor])
        for i in range(5):
            assert await _has_job(survivor, f"kept-{i}")
        response = await post_job(survivor, _job("after-recovery"))
        assert response is not None and response.status_code == 201, response
        assert (survivor.data_dir / "peers.json.ingested").exists()
        peers_text = _raft_cli("list-peers", "--rpc-addr", survivor.rpc_address)
        assert [line.split()[0] for line in peers_text.splitlines()[1:]] == ["s1"]
    finally:
        cluster.stop()
