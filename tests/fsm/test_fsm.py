"""StoreStateMachine over MemoryStore and SqliteStore: the same commands give the same stores
and the same results; refusals are results and change nothing; bad entries are skipped."""

import random
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from dkron_trio import fsm
from dkron_trio.acl import Role
from dkron_trio.commands import (
    Command,
    CommandError,
    DeleteExecutions,
    DeleteJob,
    DeleteToken,
    PutExecution,
    PutExecutions,
    RecordMissed,
    RecordPlans,
    SetCursor,
    SetJob,
    SetToken,
    decode_command,
    encode_command,
    encode_member,
)
from dkron_trio.execution import Execution, ExecutionStatus, MissedTick, MissReason
from dkron_trio.fsm import SnapshotMismatch, StoreStateMachine
from dkron_trio.job import JobStatus, ValidationError
from dkron_trio.raft.codec import encode_conf_change
from dkron_trio.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Snapshot,
    SnapshotMeta,
)
from dkron_trio.store.base import (
    AclBootstrapDone,
    JobHasChildren,
    JobNotFound,
    JobQuery,
    ParentNotFound,
    PlanRecord,
    RaftMember,
    TokenExists,
    TokenNotFound,
)
from dkron_trio.store.memory import MemoryStore
from dkron_trio.store.replica import ReplicaStore
from dkron_trio.store.sqlite import open_sqlite_store
from tests.store.helpers import T0, execution, job, token

from .helpers import contents


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ReplicaStore]:
    if request.param == "memory":
        yield MemoryStore()
    else:
        async with open_sqlite_store(tmp_path / "state.db") as sqlite_store:
            yield sqlite_store


def entries(cmds: Sequence[Command], first: int = 1) -> list[Entry]:
    return [Entry(1, first + i, data=encode_command(c)) for i, c in enumerate(cmds)]


def comparable(result: object) -> object:
    """Results compared across stores: errors by type and message."""
    if isinstance(result, Exception):
        return (type(result).__name__, str(result))
    return result


def random_commands(rng: random.Random, n: int) -> list[Command]:
    """A random mix over three jobs: parents, toggles, runs, plans, bad jobs, deletes."""
    names = ["a", "b", "c"]
    cmds: list[Command] = []
    for step in range(n):
        name = rng.choice(names)
        t = T0 + timedelta(seconds=step)
        roll = rng.random()
        if roll < 0.25:
            parent = rng.choice(["", "", *names])
            fields = {"parent_job": parent, "disabled": rng.random() < 0.3}
            if rng.random() < 0.1:
                fields["schedule"] = "not a schedule"
            cmds.append(SetJob(job(name, retention_count=3, **fields)))
        elif roll < 0.3:
            cmds.append(DeleteJob(name))
        elif roll < 0.48:
            status = rng.choice(list(ExecutionStatus))
            cmds.append(PutExecution(execution(name, rng.randrange(6), status, group=step)))
        elif roll < 0.55:
            reported = [
                execution(rng.choice(names), rng.randrange(6), rng.choice(list(ExecutionStatus)))
                for _ in range(rng.randrange(1, 4))
            ]
            cmds.append(PutExecutions(tuple(reported)))
        elif roll < 0.6:
            cmds.append(DeleteExecutions(name))
        elif roll < 0.7:
            cmds.append(RecordMissed(MissedTick(name, t, rng.choice(list(MissReason)), t)))
        elif roll < 0.75:
            cmds.append(SetCursor(name, t))
        elif roll < 0.8:
            record = token(rng.randrange(1, 4), Role.ADMIN)
            if rng.random() < 0.3:
                cmds.append(DeleteToken(record.id))
            else:
                cmds.append(SetToken(record, bootstrap=rng.random() < 0.5))
        else:
            started = [execution(name, step, ExecutionStatus.RUNNING, group=step)]
            missed = [MissedTick(name, t - timedelta(seconds=1), MissReason.OVERLAP, t)]
            cmds.append(RecordPlans((PlanRecord(name, t, missed, started),)))
    return cmds


@pytest.mark.parametrize("seed", range(4))
async def test_memory_and_sqlite_agree(seed: int, tmp_path: Path) -> None:
    cmds = random_commands(random.Random(seed), 80)
    memory = StoreStateMachine(MemoryStore())
    async with open_sqlite_store(tmp_path / "state.db") as sqlite_store:
        durable = StoreStateMachine(sqlite_store)
        log = entries(cmds)
        rng = random.Random(seed)
        results: dict[str, list[object]] = {"memory": [], "sqlite": []}
        for machine, key in ((memory, "memory"), (durable, "sqlite")):
            i = 0
            while i < len(log):
                batch = log[i : i + rng.randrange(1, 8)]
                results[key] += [comparable(r) for r in await machine.apply(batch)]
                i += len(batch)
        assert results["memory"] == results["sqlite"]
        assert len(results["memory"]) == len(cmds)
        refused = [r for r in results["memory"] if isinstance(r, tuple)]
        assert refused and len(refused) < len(cmds)  # the mix exercises both outcomes
        assert await contents(memory._store) == await contents(sqlite_store)


async def test_results_are_the_store_return_values(store: ReplicaStore) -> None:
    machine = StoreStateMachine(store)
    a = job("a")
    results = await machine.apply(
        entries(
            [
                SetJob(a),
                PutExecution(execution("a", 1)),
                PutExecution(execution("a", 2, ExecutionStatus.FAILED)),
                DeleteExecutions("a"),
                SetCursor("a", T0),
                DeleteJob("a"),
            ]
        )
    )
    assert results[0] == a
    assert results[1:5] == [None, None, 2, None]
    # The deleted job as it was stored: counters reset, the last run's status kept.
    assert results[5] == attrs.evolve(a, status=JobStatus.PARTIALLY_FAILED)


async def test_reported_executions_of_deleted_jobs_are_skipped_alone(store: ReplicaStore) -> None:
    fed: list[Execution] = []
    machine = StoreStateMachine(store, on_executions=fed.extend)
    kept, dropped = execution("a", 1), execution("gone", 2)
    results = await machine.apply(entries([SetJob(job("a")), PutExecutions((dropped, kept))]))
    assert results[1] == (dropped.id,)
    assert await store.get_execution("a", kept.id) == kept
    assert fed == [kept]


async def test_an_expected_command_is_applied_without_decoding_it_again(
    store: ReplicaStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command proposed through this server (`expect`) is applied from the value its
    proposer held; other entries, and a second entry of the same bytes, are decoded."""
    machine = StoreStateMachine(store)
    cmd = SetJob(job("a"))
    data = encode_command(cmd)
    machine.expect(data, cmd)
    decoded: list[bytes] = []

    def counting(data: bytes) -> Command:
        decoded.append(data)
        return decode_command(data)

    monkeypatch.setattr("dkron_trio.fsm.decode_entry", counting)
    other = encode_command(SetCursor("a", T0))
    log = [Entry(1, 1, data=data), Entry(1, 2, data=other), Entry(1, 3, data=data)]
    results = await machine.apply(log)
    assert results == [job("a"), None, job("a")]
    assert decoded == [other, data]


async def test_a_deleted_token_is_the_result(store: ReplicaStore) -> None:
    machine = StoreStateMachine(store)
    first = token(1, Role.OPERATOR)
    results = await machine.apply(entries([SetToken(first), DeleteToken(first.id)]))
    assert results == [None, first]
    assert await store.list_tokens() == []


@pytest.mark.parametrize(
    ("cmd", "error"),
    [
        (DeleteJob("missing"), JobNotFound),
        (DeleteJob("parent"), JobHasChildren),
        (SetJob(job("orphan", parent_job="missing")), ParentNotFound),
        (SetJob(job("bad", schedule="every now and then")), ValidationError),
        (PutExecution(execution("missing", 1)), JobNotFound),
        (DeleteExecutions("missing"), JobNotFound),
        (RecordMissed(MissedTick("missing", T0, MissReason.PAUSED, T0)), JobNotFound),
        (SetCursor("missing", T0), JobNotFound),
        (SetToken(token(2, Role.ADMIN), bootstrap=True), AclBootstrapDone),
        (SetToken(token(1, Role.READ_ONLY)), TokenExists),
        (DeleteToken(token(2, Role.ADMIN).id), TokenNotFound),
    ],
)
async def test_refused_commands_return_the_error_and_change_nothing(
    store: ReplicaStore, cmd: Command, error: type[Exception]
) -> None:
    machine = StoreStateMachine(store)
    setup: list[Command] = [
        SetJob(job("parent")),
        SetJob(job("child", parent_job="parent")),
        PutExecution(execution("parent", 1)),
        SetCursor("parent", T0),
        SetToken(token(1, Role.ADMIN), bootstrap=True),
    ]
    assert not any(isinstance(r, Exception) for r in await machine.apply(entries(setup)))
    before = await contents(store)
    [result] = await machine.apply(entries([cmd], first=10))
    assert isinstance(result, error)
    assert await contents(store) == before


async def test_barriers_conf_changes_and_malformed_entries(store: ReplicaStore) -> None:
    machine = StoreStateMachine(store)
    conf = encode_conf_change(ConfChange(ConfChangeType.ADD_NODE, 4))
    log = [
        Entry(1, 1),
        Entry(1, 2, EntryType.CONF_CHANGE, conf),
        Entry(1, 3, data=b"\xc1garbage"),
        *entries([SetJob(job("a"))], first=4),
    ]
    results = await machine.apply(log)
    assert results[:2] == [None, None]
    assert isinstance(results[2], CommandError)
    assert results[3] == job("a")
    assert machine.malformed == 1
    assert [j.name for j in (await store.list_jobs(JobQuery())).jobs] == ["a"]


async def test_members_follow_membership_changes(store: ReplicaStore) -> None:
    machine = StoreStateMachine(store)
    add = ConfChange(ConfChangeType.ADD_NODE, 4, encode_member("s4", "127.0.0.1:7000"))
    learner = ConfChange(ConfChangeType.ADD_LEARNER, 5, encode_member("s5", "127.0.0.1:7001"))
    bad = ConfChange(ConfChangeType.ADD_NODE, 6, b"\x93")
    log = [
        Entry(1, 1, EntryType.CONF_CHANGE, encode_conf_change(add)),
        Entry(1, 2, EntryType.CONF_CHANGE, encode_conf_change(learner)),
        Entry(1, 3, EntryType.CONF_CHANGE, encode_conf_change(bad)),
    ]
    results = await machine.apply(log)
    assert results[:2] == [None, None]
    assert isinstance(results[2], CommandError)
    assert [m.name for m in await store.raft_members()] == ["s4", "s5"]
    remove = ConfChange(ConfChangeType.REMOVE_NODE, 4)
    await machine.apply([Entry(1, 4, EntryType.CONF_CHANGE, encode_conf_change(remove))])
    assert await store.raft_members() == [RaftMember(5, "s5", "127.0.0.1:7001")]
    assert await store.applied_index() == 4


async def test_a_snapshot_replaces_the_state(store: ReplicaStore) -> None:
    machine = StoreStateMachine(store)
    await machine.apply(entries([SetJob(job("a"))], first=1))
    applied, image = await store.snapshot_image()
    await machine.apply(entries([SetJob(job("b"))], first=2))
    meta = SnapshotMeta(applied, 1, ConfState(frozenset({1})))
    await machine.restore(Snapshot(meta, image))
    assert [j.name for j in (await store.list_jobs(JobQuery())).jobs] == ["a"]
    assert await store.applied_index() == 1
    with pytest.raises(SnapshotMismatch, match="index 7"):
        await machine.restore(Snapshot(attrs.evolve(meta, index=7), image))


async def test_the_bootstrap_snapshot_is_an_empty_state_at_its_index(store: ReplicaStore) -> None:
    machine = StoreStateMachine(store)
    await machine.apply(entries([SetJob(job("a"))], first=1))
    await machine.restore(Snapshot(SnapshotMeta(3, 1, ConfState(frozenset({1}))), b""))
    assert await store.applied_index() == 3
    assert (await store.list_jobs(JobQuery())).jobs == []


async def test_a_large_batch_is_decoded_on_a_thread_with_the_same_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above `DECODE_OFF_LOOP` bytes a batch is decoded on a worker thread (the event loop
    goes on meanwhile); the results, the skipped entries and the store are the same."""
    log = [*entries(random_commands(random.Random(7), 300)), Entry(1, 301, data=b"\xc1bad")]
    inline, threaded = MemoryStore(), MemoryStore()
    inline_results = await StoreStateMachine(inline).apply(log)
    hops: list[object] = []
    run_sync = trio.to_thread.run_sync

    async def counted(fn: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(fn)
        return await run_sync(fn, *args, **kwargs)

    monkeypatch.setattr(fsm, "DECODE_OFF_LOOP", 0)
    monkeypatch.setattr(trio.to_thread, "run_sync", counted)
    machine = StoreStateMachine(threaded)
    threaded_results = await machine.apply(log)
    assert hops == [fsm._decode_all]
    assert [comparable(r) for r in threaded_results] == [comparable(r) for r in inline_results]
    assert machine.malformed == 1
    assert await contents(threaded) == await contents(inline)
