"""The replica side (applied index, batches, members, images), against both stores."""

import sqlite3
from pathlib import Path

import pytest

from dkron_trio.acl import Role
from dkron_trio.execution import ExecutionStatus, MissedTick, MissReason
from dkron_trio.job import Job
from dkron_trio.store import rules
from dkron_trio.store.base import ExecutionQuery, JobNotFound, PlanRecord, RaftMember, StoreError
from dkron_trio.store.replica import ImageError, ReplicaStore
from dkron_trio.store.sqlite import open_sqlite_store
from tests.store.helpers import T0, execution, job, token


async def test_a_batch_applies_in_order_and_records_its_index(store: ReplicaStore) -> None:
    assert await store.applied_index() == 0
    results = await store.apply_replicated(
        3,
        [
            lambda tx: rules.apply_set_job(tx, job("a")),
            lambda tx: rules.apply_put_execution(tx, execution("a", 1, ExecutionStatus.SUCCESS)),
            lambda tx: rules.apply_delete_executions(tx, "a"),
        ],
    )
    assert isinstance(results[0], Job)
    assert results[0].success_count == 0
    assert results[1:] == [None, 1]
    assert await store.applied_index() == 3


async def test_an_index_not_after_the_applied_one_is_refused(store: ReplicaStore) -> None:
    await store.apply_replicated(5, [])
    with pytest.raises(StoreError, match="not after"):
        await store.apply_replicated(5, [lambda tx: rules.apply_set_job(tx, job("a"))])
    assert await store.applied_index() == 5
    with pytest.raises(JobNotFound):
        await store.get_job("a")


async def test_a_raising_mutation_keeps_nothing_of_its_batch(store: ReplicaStore) -> None:
    with pytest.raises(JobNotFound):
        await store.apply_replicated(
            1,
            [
                lambda tx: rules.apply_set_job(tx, job("a")),
                lambda tx: rules.apply_delete_job(tx, "missing"),
            ],
        )
    assert await store.applied_index() == 0
    with pytest.raises(JobNotFound):
        await store.get_job("a")


async def test_members_are_replaced_by_id_and_by_name(store: ReplicaStore) -> None:
    await store.apply_replicated(
        1,
        [
            lambda tx: rules.apply_add_member(tx, RaftMember(7, "s1", "127.0.0.1:1")),
            lambda tx: rules.apply_add_member(tx, RaftMember(9, "s2", "127.0.0.1:2")),
            lambda tx: rules.apply_add_member(tx, RaftMember(8, "s1", "127.0.0.1:3")),
            lambda tx: rules.apply_remove_member(tx, 9),
        ],
    )
    assert await store.raft_members() == [RaftMember(8, "s1", "127.0.0.1:3")]


async def _fill(store: ReplicaStore) -> None:
    missed = MissedTick("a", T0, MissReason.MISFIRE, T0, "down")
    await store.apply_replicated(
        4,
        [
            lambda tx: rules.apply_set_job(tx, job("a")),
            lambda tx: rules.apply_put_execution(tx, execution("a", 1, ExecutionStatus.SUCCESS)),
            lambda tx: rules.apply_record_plans(
                tx, [PlanRecord("a", T0, [missed], [execution("a", 2, ExecutionStatus.RUNNING)])]
            ),
            lambda tx: rules.apply_add_member(tx, RaftMember(1, "s1", "127.0.0.1:6868")),
            lambda tx: rules.apply_set_token(tx, token(1, Role.ADMIN), True),
        ],
    )


async def _contents(store: ReplicaStore) -> object:
    return (
        await store.applied_index(),
        await store.get_job("a"),
        await store.list_executions("a", ExecutionQuery()),
        await store.list_missed("a"),
        await store.get_cursor("a"),
        await store.raft_members(),
        await store.list_tokens(),
    )


async def test_an_image_restores_the_whole_state(store: ReplicaStore, tmp_path: Path) -> None:
    await _fill(store)
    applied, image = await store.snapshot_image()
    assert applied == 4
    before = await _contents(store)
    await store.apply_replicated(5, [lambda tx: rules.apply_delete_executions(tx, "a")])
    assert await store.restore_image(image) == 4
    assert await _contents(store) == before
    await store.apply_replicated(5, [lambda tx: rules.apply_set_job(tx, job("b"))])
    assert (await store.get_job("b")).name == "b"


async def test_garbage_is_no_image_and_changes_nothing(store: ReplicaStore) -> None:
    await _fill(store)
    before = await _contents(store)
    for garbage in (b"\x00" * 100, b"SQLite format 3\x00" + b"\x01" * 200):
        with pytest.raises(ImageError):
            await store.restore_image(garbage)
    assert await _contents(store) == before


async def test_a_restored_sqlite_state_survives_reopening(tmp_path: Path) -> None:
    async with open_sqlite_store(tmp_path / "a.db") as a:
        await _fill(a)
        _, image = await a.snapshot_image()
        expected = await _contents(a)
    async with open_sqlite_store(tmp_path / "b.db") as b:
        await b.restore_image(image)
    async with open_sqlite_store(tmp_path / "b.db") as b:
        assert await _contents(b) == expected


async def test_a_version_1_file_gains_the_replica_tables(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with open_sqlite_store(path) as store:
        await store.set_job(job("a"))
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TABLE replica; DROP TABLE raft_members; DROP TABLE acl_tokens;"
        " PRAGMA user_version = 1;"
    )
    conn.close()
    async with open_sqlite_store(path) as store:
        assert (await store.get_job("a")).name == "a"
        assert await store.applied_index() == 0
        await store.apply_replicated(1, [])
        assert await store.applied_index() == 1


async def test_an_empty_image_is_the_empty_state(store: ReplicaStore) -> None:
    await _fill(store)
    assert await store.restore_image(b"") == 0
    assert await store.applied_index() == 0
    assert await store.raft_members() == []
    with pytest.raises(JobNotFound):
        await store.get_job("a")
