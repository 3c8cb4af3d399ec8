"""``GET /metrics``: every family appears and moves (in-process API, memory store, the real
state machine for missed ticks, a real raft.db for fsync latency)."""

from pathlib import Path

import attrs
import trio
from prometheus_client.parser import text_string_to_metric_families

from dkron_trio.commands import Command, RecordMissed, RecordPlans, SetJob, encode_command
from dkron_trio.execution import MissedTick, MissReason
from dkron_trio.fsm import StoreStateMachine
from dkron_trio.metrics import Metrics
from dkron_trio.raft.sqlite_storage import SqliteRaftStorage
from dkron_trio.raft.status import Status
from dkron_trio.raft.types import NONE, ConfState, Entry, HardState, Ready, Role
from dkron_trio.store.base import PlanRecord
from dkron_trio.store.memory import MemoryStore
from tests.http.harness import T0, Api, open_api
from tests.store.helpers import job

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _status(term: int, commit: int, applied: int, role: Role = Role.LEADER) -> Status:
    return Status(
        node_id=1,
        role=role,
        term=term,
        vote=1,
        leader_id=1 if role is Role.LEADER else NONE,
        commit=commit,
        applied=applied,
        last_index=commit,
        conf_state=ConfState(voters=frozenset({1})),
        lead_transferee=NONE,
        progress={},
    )


async def _scrape(api: Api) -> Samples:
    response = await api.request("GET", "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.get_data(as_text=True)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def _api_with_metrics(nursery: trio.Nursery) -> tuple[Api, Metrics, list[Status]]:
    metrics = Metrics()
    api = await open_api(nursery, metrics=metrics)
    api.runs.add_finished_listener(metrics.on_finished)
    statuses = [_status(term=2, commit=10, applied=10)]
    metrics.watch_raft(lambda: statuses[-1])
    metrics.watch_members(api.app.state.deps.cluster.members)
    return api, metrics, statuses


async def test_metrics_are_off_without_enable_prometheus(api: Api) -> None:
    status, body = await api.json("GET", "/metrics")
    assert status == 404
    assert "enable-prometheus" in body["error"]


async def test_execution_lateness_raft_gossip_and_request_families_move(
    nursery: trio.Nursery,
) -> None:
    api, _, statuses = await _api_with_metrics(nursery)
    before = await _scrape(api)
    assert _value(before, "dkron_raft_term") == 2
    assert _value(before, "dkron_raft_apply_lag") == 0
    assert _value(before, "dkron_raft_leader") == 1
    assert _value(before, "dkron_gossip_members", status="alive") == 1
    assert _value(before, "dkron_gossip_members", status="failed") == 0
    assert _value(before, "dkron_execution_start_lateness_seconds_count") == 0
    for reason in MissReason:
        assert ("dkron_missed_ticks_total", (("reason", reason.value),)) in before

    assert (await api.put(name="ok")).status_code == 201
    assert (await api.put(name="bad")).status_code == 201
    api.executor.failing.add("bad")
    for name in ("ok", "bad", "ok"):
        assert (await api.request("POST", f"/v1/jobs/{name}")).status_code == 202
    with trio.fail_after(10):
        await api.runs.wait_idle()
    assert len(api.executor.started) == 3
    assert (await api.request("GET", "/v1/jobs/nope")).status_code == 404
    assert (await api.request("GET", "/no/such/path")).status_code == 404
    statuses.append(_status(term=3, commit=15, applied=12, role=Role.FOLLOWER))

    after = await _scrape(api)
    assert _value(after, "dkron_executions_total", job="ok", status="success") == 2
    assert _value(after, "dkron_executions_total", job="bad", status="failed") == 1
    assert _value(after, "dkron_execution_start_lateness_seconds_count") == 3
    assert _value(after, "dkron_raft_term") == 3
    assert _value(after, "dkron_raft_commit_index") == 15
    assert _value(after, "dkron_raft_apply_lag") == 3
    assert _value(after, "dkron_raft_leader") == 0
    requests = "dkron_http_requests_total"
    assert _value(after, requests, method="POST", route="/v1/jobs", status="201") == 2
    run = {"method": "POST", "route": "/v1/jobs/<job_name>", "status": "202"}
    assert _value(after, requests, **run) == 3
    lookup = {"method": "GET", "route": "/v1/jobs/<job_name>", "status": "404"}
    assert _value(after, requests, **lookup) == 1
    assert _value(after, requests, method="GET", route="unmatched", status="404") == 1
    assert _value(after, requests, method="GET", route="/metrics", status="200") == 1


async def test_missed_ticks_count_as_the_state_machine_applies_them(nursery: trio.Nursery) -> None:
    api, metrics, _ = await _api_with_metrics(nursery)
    store = MemoryStore()
    fsm = StoreStateMachine(store, on_missed=metrics.on_missed)

    def tick(second: int, reason: MissReason) -> MissedTick:
        return MissedTick("j", T0.replace(second=second), reason, T0)

    commands: list[Command] = [
        SetJob(job("j")),
        RecordPlans(
            (PlanRecord("j", T0, [tick(1, MissReason.OVERLAP), tick(2, MissReason.OVERLAP)], []),)
        ),
        RecordMissed(tick(3, MissReason.PAUSED)),
        RecordPlans(
            (
                PlanRecord(
                    "gone", T0, [attrs.evolve(tick(4, MissReason.OVERLAP), job_name="gone")], []
                ),
            )
        ),
    ]
    entries = [Entry(1, i, data=encode_command(c)) for i, c in enumerate(commands, start=1)]
    await fsm.apply(entries)

    samples = await _scrape(api)
    assert _value(samples, "dkron_missed_ticks_total", reason="overlap") == 2  # not the refused
    assert _value(samples, "dkron_missed_ticks_total", reason="paused") == 1
    assert _value(samples, "dkron_missed_ticks_total", reason="misfire") == 0


async def test_raft_fsync_latency_moves_with_each_durable_raft_db_write(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    api, metrics, _ = await _api_with_metrics(nursery)
    before = await _scrape(api)
    assert _value(before, "dkron_raft_fsync_seconds_count") == 0
    storage = SqliteRaftStorage(
        tmp_path / "raft.db",
        ConfState(frozenset({1})),
        on_durable_write=metrics.on_raft_durable_write,
    )
    try:
        for index in (2, 3):
            entry = Entry(1, index, data=b"cmd")
            storage.save(Ready(entries=(entry,), hard_state=HardState(1, 1, index), must_sync=True))
        storage.save(Ready(hard_state=HardState(1, 1, 3)))  # commit index only: no fsync
    finally:
        storage.close()
    after = await _scrape(api)
    assert _value(after, "dkron_raft_fsync_seconds_count") == 2
    assert _value(after, "dkron_raft_fsync_seconds_sum") > 0
    assert _value(after, "dkron_raft_fsync_seconds_bucket", le="+Inf") == 2
