"""One chaos run: start the cluster and its proxies, schedule jobs, drive the workload under
the nemesis, heal, then check the history, the final state and the run records."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio

from dkron_trio.chaos.faults import FaultKind, FaultPlan
from dkron_trio.chaos.history import JobInput, JobModel, JobOp, JobOutput, lost_writes
from dkron_trio.chaos.launch import Launcher
from dkron_trio.chaos.nemesis import Nemesis, agreed_leader, get_json, last_run
from dkron_trio.chaos.nodes import Node, make_nodes, snapshot_code
from dkron_trio.chaos.proxy import ChaosProxy
from dkron_trio.chaos.report import RunReport
from dkron_trio.chaos.workload import Workload
from dkron_trio.execution import Execution, MissedTick, MissReason
from dkron_trio.job import Job
from dkron_trio.logs import get_logger
from dkron_trio.run_checks import ViolationKind, check_runs
from dkron_trio.sim.linearizability import Operation, Outcome, Verdict, check_history

log = get_logger(__name__)

ALL_KINDS = tuple(FaultKind)


@attrs.frozen
class ChaosConfig:
    """A run's settings (defaults as scripts/chaos.py's; the test suite's short run sets
    rounds, concurrent and short quiet and hold times)."""

    root: Path
    seed: int
    duration: float = 120.0
    servers: int = 3
    agents: int = 2
    kinds: tuple[FaultKind, ...] = ALL_KINDS
    clients: int = 4
    keys: int = 8
    tick_jobs: int = 3
    recovery_bound: float = 30.0
    startup_timeout: float = 90.0
    settle: float = 6.0
    quiet: tuple[float, float] = (1.0, 3.0)
    hold: tuple[float, float] = (1.0, 4.0)
    crash_hold: tuple[float, float] = (1.0, 3.0)
    concurrent: bool = False
    rounds: int | None = None
    """Stop after this many rounds of faults (every kind once each); `duration` caps it."""
    max_steps: int = 2_000_000
    log_level: str = "info"

    def __attrs_post_init__(self) -> None:
        if self.servers < 3:
            raise ValueError("servers: at least 3")
        if self.agents < 1:
            raise ValueError("agents: at least 1 (the scheduled jobs run on agents)")
        if self.duration <= 0:
            raise ValueError("duration: must be positive")
        if self.keys < 1 or self.clients < 1:
            raise ValueError("keys and clients: at least 1 each")
        if self.rounds is not None and self.rounds < 1:
            raise ValueError("rounds: at least 1")


def tick_job(name: str, retention: int) -> dict[str, Any]:
    """A job ticking every second on one agent; missed ticks run late (run_all). It keeps
    `retention` executions, so the checks at the end see every tick of the run."""
    return {
        "name": name,
        "retention_count": retention,
        "schedule": "@every 1s",
        "executor": "shell",
        "executor_config": {"command": "true"},
        "tags": {"kind": "worker:1"},
        "misfire_policy": "run_all",
    }


async def _wait(what: str, within: float, probe: Any) -> Any:
    with trio.move_on_after(within):
        while True:
            found = await probe()
            if found:
                return found
            await trio.sleep(0.2)
    raise RuntimeError(f"timed out after {within}s waiting for {what}")


async def _setup(http: httpx.AsyncClient, config: ChaosConfig, nodes: list[Node]) -> None:
    servers = [n for n in nodes if n.server]
    agents = {n.name for n in nodes if not n.server}

    async def leader() -> Node | None:
        return await agreed_leader(http, servers)

    first = await _wait("a leader", config.startup_timeout, leader)

    async def agents_alive() -> bool:
        members = await get_json(http, f"{first.url}/v1/members")
        alive = {
            m["Name"] for m in members or [] if isinstance(m, dict) and m["statusText"] == "alive"
        }
        return agents <= alive

    await _wait("the agents alive", config.startup_timeout, agents_alive)
    names = _tick_names(config)
    for name in names:

        async def created(name: str = name) -> bool:
            current = await leader()
            if current is None:
                return False
            try:
                answer = await http.post(
                    f"{current.url}/v1/jobs", json=tick_job(name, _retention(config))
                )
            except httpx.HTTPError:
                return False
            return answer.status_code == 201

        await _wait(f"job {name} created", config.startup_timeout, created)

    async def running() -> bool:
        current = await leader()
        return current is not None and await last_run(http, current, names) is not None

    await _wait("a first scheduled run", config.startup_timeout, running)


def _retention(config: ChaosConfig) -> int:
    """Executions a tick job keeps: more than its ticks in the run, late ones included."""
    return int(config.duration * 2) + 1000


def _tick_names(config: ChaosConfig) -> tuple[str, ...]:
    return tuple(f"tick-{i}" for i in range(config.tick_jobs))


def _key_names(config: ChaosConfig) -> tuple[str, ...]:
    return tuple(f"kv-{i}" for i in range(config.keys))


@attrs.define
class _Records:
    final: dict[str, str | None]
    runs: list[tuple[Job, list[Execution], list[MissedTick]]]
    until: datetime


async def _read_records(http: httpx.AsyncClient, config: ChaosConfig, leader: Node) -> _Records:
    jobs = await get_json(http, f"{leader.url}/v1/jobs?consistent")
    if not isinstance(jobs, list):
        raise RuntimeError("the leader answered no consistent job list")
    keys = _key_names(config)
    final: dict[str, str | None] = dict.fromkeys(keys)
    for body in jobs:
        if body["name"] in final:
            final[body["name"]] = body["displayname"]
    until = datetime.now(UTC) - timedelta(seconds=3)
    runs = []
    for name in _tick_names(config):
        job = Job.from_record(await get_json(http, f"{leader.url}/v1/jobs/{name}"))
        executions = [
            Execution.from_json(e)
            for e in await get_json(http, f"{leader.url}/v1/jobs/{name}/executions") or []
        ]
        missed = [
            MissedTick(
                name,
                datetime.fromisoformat(m["scheduled_at"]),
                MissReason(m["reason"]),
                datetime.fromisoformat(m["recorded_at"]),
                m.get("detail", ""),
            )
            for m in await get_json(http, f"{leader.url}/v1/jobs/{name}/missed?limit=1000") or []
        ]
        runs.append((job, executions, missed))
    return _Records(final, runs, until)


def _final_reads(
    final: dict[str, str | None], client: int, now: int
) -> list[Operation[JobInput, JobOutput]]:
    return [
        Operation(client, JobInput(JobOp.GET, name), now, Outcome.OK, JobOutput(value), now + 1)
        for name, value in final.items()
    ]


async def run_chaos(config: ChaosConfig) -> RunReport:
    """Run the whole scenario; the report lists every violation found."""
    config.root.mkdir(parents=True, exist_ok=True)
    launcher = Launcher(snapshot_code(config.root))
    nodes = make_nodes(config.root, config.servers, config.agents, launcher, config.log_level)
    proxy = ChaosProxy({n.name: n.rpc_port for n in nodes}, {n.source: n.name for n in nodes})
    plan = FaultPlan(
        config.kinds,
        tuple(n.name for n in nodes if n.server),
        tuple(n.name for n in nodes if not n.server),
        config.quiet,
        config.hold,
        config.crash_hold,
        config.concurrent,
    )
    nemesis = Nemesis(nodes, proxy, plan, config.seed, _tick_names(config), config.recovery_bound)
    workload = Workload(
        [n for n in nodes if n.server], _key_names(config), config.seed, config.clients
    )
    async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=5.0) as http:
        await nursery.start(proxy.run)
        for node in nodes:
            node.proxy_port = proxy.port(node.name)
        try:
            for node in nodes:
                node.start()
            await _setup(http, config, nodes)
            print(f"[chaos] cluster up, seed {config.seed}", flush=True)
            started = trio.current_time()
            stop = trio.Event()
            async with trio.open_nursery() as inner:
                inner.start_soon(workload.run, stop)
                await nemesis.run(started + config.duration, config.rounds)
                stop.set()
            elapsed = trio.current_time() - started
            # The last heal's backlog (late ticks, executions to take over) may take longer
            # than one bound; the records are read only once scheduling runs again.
            final = await nemesis.recover(http, datetime.now(UTC), 3 * config.recovery_bound)
            if final is None:
                nemesis.problems.append(
                    f"no recovery within {3 * config.recovery_bound}s at the end of the run"
                )
            await trio.sleep(config.settle)
            leader = await _wait(
                "a leader at the end",
                config.recovery_bound,
                lambda: agreed_leader(http, [n for n in nodes if n.server]),
            )
            records = await _read_records(http, config, leader)
        finally:
            for node in nodes:
                node.kill()
            launcher.close()
            nursery.cancel_scope.cancel()
    return _check(config, nemesis, workload, records, elapsed)


def _check(
    config: ChaosConfig,
    nemesis: Nemesis,
    workload: Workload,
    records: _Records,
    elapsed: float,
) -> RunReport:
    violations = list(nemesis.problems)
    violations += [f"unexpected answer: {u}" for u in workload.unexpected]
    history = list(workload.recorder.history())
    history += _final_reads(records.final, config.clients, time.monotonic_ns())
    result = check_history(JobModel(), history, max_steps=config.max_steps)
    if result.verdict is Verdict.ILLEGAL:
        dump = config.root / "nonlinearizable.json"
        dump.write_text(json.dumps([_op_json(op) for op in result.partition], indent=1))
        violations.append(f"history not linearizable (the failing job's operations: {dump})")
    lost = lost_writes(history, records.final)
    violations += [
        f"lost write: {w.name} = {w.value!r} acknowledged, final {w.final!r}" for w in lost
    ]
    duplicates = unexplained = scheduled = 0
    for job, executions, missed in records.runs:
        scheduled += sum(e.scheduled_at is not None for e in executions)
        for v in check_runs(job, executions, missed, until=records.until, max_targets=1):
            if v.kind is ViolationKind.DUPLICATE:
                duplicates += 1
            else:
                unexplained += 1
            violations.append(f"{v.kind.value} tick: {v.job} at {v.scheduled_at} ({v.detail})")
    return RunReport(
        seed=config.seed,
        servers=config.servers,
        agents=config.agents,
        duration=elapsed,
        faults=nemesis.faults,
        operations=workload.outcomes,
        linearizability=result.verdict.value,
        lost_writes=len(lost),
        duplicate_ticks=duplicates,
        unexplained_ticks=unexplained,
        scheduled_runs=scheduled,
        recoveries=tuple(nemesis.recoveries),
        leader_recoveries=tuple(nemesis.leader_recoveries),
        violations=tuple(violations),
    )


def _op_json(op: Operation[JobInput, JobOutput]) -> dict[str, Any]:
    return {
        "client": op.client,
        "op": op.input.op.value,
        "name": op.input.name,
        "value": op.input.value,
        "call": op.call,
        "ret": op.ret,
        "outcome": op.outcome.value,
        "output": None if op.output is None else op.output.value,
    }
