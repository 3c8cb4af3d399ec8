"""Servers sharing one backend: replicas agree, one leader at a time, its writes fenced,
snapshots compact the log and catch a new server up."""

from pathlib import Path

import pytest
import trio

from dkron_trio.cluster.replicated import ReplicatedStore
from dkron_trio.commands import SetCursor
from dkron_trio.store.base import ClusterUnavailable, JobNotFound, JobQuery
from dkron_trio.store.memory import MemoryStore
from tests.backends.conftest import BackendUnderTest
from tests.backends.harness import running_server, until, wait_leader
from tests.store.helpers import T0, job


async def test_a_write_through_one_server_is_read_through_another(
    backend: BackendUnderTest, tmp_path: Path
) -> None:
    async with (
        running_server(backend, "a", tmp_path / "a") as (a, a_local),
        running_server(backend, "b", tmp_path / "b") as (b, b_local),
    ):
        store_a, store_b = (
            ReplicatedStore(a_local, a.command_log),
            ReplicatedStore(b_local, b.command_log),
        )
        await store_b.set_job(job("x"))
        assert (await store_b.get_job("x")).name == "x"  # read your own write
        await store_a.linearize()
        assert (await store_a.get_job("x")).name == "x"
        await store_a.delete_job("x")
        await store_b.linearize()
        with pytest.raises(JobNotFound):
            await store_b.get_job("x")

        async def one_leads() -> bool:
            return a.is_leader or b.is_leader

        await until(one_leads, within=15, what="a server leads")
        assert not (a.is_leader and b.is_leader)

        async def a_knows_the_leader() -> bool:  # a follower looks the lease up now and then
            return a.leader_name is not None

        await until(a_knows_the_leader, within=15, what="server a learns the leader")
        assert a.leader_name in ("a", "b")


async def test_leaving_hands_the_lease_over_and_fences_the_old_leader(
    backend: BackendUnderTest, tmp_path: Path
) -> None:
    async with running_server(backend, "a", tmp_path / "a") as (a, a_local):
        await wait_leader(a)
        store_a = ReplicatedStore(a_local, a.command_log)
        await store_a.set_job(job("x"))
        async with running_server(backend, "b", tmp_path / "b") as (b, b_local):
            with pytest.raises(ClusterUnavailable):
                await b.command_log.apply(SetCursor("x", T0), forward=False)
            fence = a.fence
            await a.leave()
            assert not a.is_leader
            with pytest.raises(ClusterUnavailable):
                await a.command_log.apply(SetCursor("x", T0), forward=False)
            await wait_leader(b)
            assert b.fence > fence
            await ReplicatedStore(b_local, b.command_log).set_cursor("x", T0)
            await store_a.linearize()
            assert await store_a.get_cursor("x") == T0


async def test_the_leader_snapshots_and_a_new_server_starts_from_it(
    backend: BackendUnderTest, tmp_path: Path
) -> None:
    async with running_server(backend, "a", tmp_path / "a", snapshot_threshold=5) as (a, local):
        await wait_leader(a)
        store = ReplicatedStore(local, a.command_log)
        for n in range(12):
            await store.set_job(job(f"j{n}"))
        reader = backend.open()

        async def snapshot_saved() -> bool:
            snapshot = await reader.load_snapshot()
            return snapshot is not None and snapshot[0] >= 10

        await until(snapshot_saved, within=15, what="a snapshot at index 10 or later")
    async with running_server(backend, "b", tmp_path / "b") as (b, b_local):
        store_b = ReplicatedStore(b_local, b.command_log)
        await store_b.linearize()
        page = await b_local.list_jobs(JobQuery())
        assert sorted(j.name for j in page.jobs) == sorted(f"j{n}" for n in range(12))


async def test_a_replica_ahead_of_the_backends_log_refuses_writes(
    backend: BackendUnderTest, tmp_path: Path
) -> None:
    local = MemoryStore()
    await local.apply_replicated(50, [])  # state from a backend that was since lost
    async with running_server(backend, "a", tmp_path, local=local) as (a, _):
        with pytest.raises(ClusterUnavailable, match="lost or replaced"):
            await ReplicatedStore(local, a.command_log).set_job(job("x"))


async def test_concurrent_writers_on_two_servers_leave_identical_replicas(
    backend: BackendUnderTest, tmp_path: Path
) -> None:
    async with (
        running_server(backend, "a", tmp_path / "a") as (a, a_local),
        running_server(backend, "b", tmp_path / "b") as (b, b_local),
    ):
        stores = [ReplicatedStore(a_local, a.command_log), ReplicatedStore(b_local, b.command_log)]
        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(stores[n % 2].set_job, job(f"j{n}"))
        with trio.fail_after(30):  # the lease holder may append its own records meanwhile
            while True:
                for store in stores:
                    await store.linearize()
                if await a_local.applied_index() == await b_local.applied_index():
                    break
        names = [sorted(j.name for j in (await s.list_jobs(JobQuery())).jobs) for s in stores]
        assert names[0] == names[1] == sorted(f"j{n}" for n in range(20))
