"""The nemesis: applies the scheduled faults to the real cluster, heals them, and measures
how long the cluster takes to recover (an agreed leader, and a scheduled run finished after
the heal) each time."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import httpx
import trio

from dkron_trio.chaos.faults import Fault, FaultKind, FaultPlan, Step, schedule
from dkron_trio.chaos.nodes import Node
from dkron_trio.chaos.proxy import ChaosProxy
from dkron_trio.logs import get_logger

log = get_logger(__name__)


async def get_json(http: httpx.AsyncClient, url: str) -> Any:
    """The JSON body of a 200 answer; None for any other answer or none at all."""
    try:
        response = await http.get(url)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


async def agreed_leader(http: httpx.AsyncClient, servers: Sequence[Node]) -> Node | None:
    """The server every running, unpaused server names as leader, if they agree."""
    live = [s for s in servers if s.running and not s.paused]
    names = set()
    for server in live:
        body = await get_json(http, f"{server.url}/v1/leader")
        if not isinstance(body, dict):
            return None
        names.add(body.get("Name"))
    leader = [s for s in live if s.name in names]
    return leader[0] if len(names) == 1 and leader else None


async def last_run(http: httpx.AsyncClient, leader: Node, jobs: Sequence[str]) -> datetime | None:
    """The latest finish of a run of any of `jobs`, as the leader knows it."""
    latest: datetime | None = None
    for name in jobs:
        body = await get_json(http, f"{leader.url}/v1/jobs/{name}")
        if not isinstance(body, dict):
            continue
        for key in ("last_success", "last_error"):
            if body.get(key):
                at = datetime.fromisoformat(str(body[key]))
                latest = at if latest is None or at > latest else latest
    return latest


@attrs.frozen
class Recovery:
    """Seconds from a heal until a leader was agreed, and until scheduling ran again."""

    leader: float
    scheduling: float


@attrs.define
class Nemesis:
    """Runs the fault schedule; `recoveries` are seconds from each step's heal until
    scheduling ran again (`leader_recoveries` until a leader was agreed), `problems` the
    steps after which recovery took longer than the bound and the nodes that exited by
    themselves."""

    nodes: Sequence[Node]
    proxy: ChaosProxy
    plan: FaultPlan
    seed: int
    tick_jobs: tuple[str, ...]
    recovery_bound: float
    faults: Counter[str] = attrs.field(factory=Counter)
    recoveries: list[float] = attrs.field(factory=list)
    leader_recoveries: list[float] = attrs.field(factory=list)
    problems: list[str] = attrs.field(factory=list)

    @property
    def servers(self) -> list[Node]:
        return [n for n in self.nodes if n.server]

    def _node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    async def run(self, deadline: float, rounds: int | None = None) -> None:
        """Apply the schedule until the `deadline` would be passed, or `rounds` rounds (every
        kind once in each) are done."""
        started = trio.current_time()
        async with httpx.AsyncClient(timeout=2.0) as http:
            for number, steps in enumerate(schedule(self.plan, random.Random(self.seed))):
                if rounds is not None and number >= rounds:
                    return
                for step in steps:
                    if trio.current_time() + step.quiet + step.hold >= deadline:
                        return
                    await self._step(http, step, started)

    async def _step(self, http: httpx.AsyncClient, step: Step, started: float) -> None:
        await trio.sleep(step.quiet)
        self._check_alive()
        log.info("fault", fault=step.describe())
        at = trio.current_time() - started
        print(f"[chaos] {at:6.1f}s {step.describe()}", flush=True)
        async with trio.open_nursery() as nursery:
            for fault in step.faults:
                nursery.start_soon(self._inject, fault)
        for fault in step.faults:
            self.faults[fault.kind.value] += 1
        healed_at = datetime.now(UTC)
        recovery = await self.recover(http, healed_at)
        if recovery is None:
            print("[chaos]   NO RECOVERY", flush=True)
            self.problems.append(
                f"no recovery within {self.recovery_bound}s after {step.describe()} "
                f"healed at {healed_at.isoformat()}"
            )
            return
        print(
            f"[chaos]   recovered in {recovery.scheduling:.1f}s "
            f"(leader agreed after {recovery.leader:.1f}s)",
            flush=True,
        )
        self.recoveries.append(recovery.scheduling)
        self.leader_recoveries.append(recovery.leader)

    async def _inject(self, fault: Fault) -> None:
        targets = [self._node(name) for name in fault.targets]
        match fault.kind:
            case FaultKind.KILL | FaultKind.CRASH_ALL:
                for node in targets:
                    node.kill()
                await trio.sleep(fault.hold)
                for node in targets:
                    node.start()
            case FaultKind.PAUSE:
                for node in targets:
                    node.pause()
                await trio.sleep(fault.hold)
                for node in targets:
                    node.resume()
            case FaultKind.PARTITION:
                rest = [n.name for n in self.nodes if n.name not in fault.targets]
                self.proxy.partition(fault.targets, rest)
                await trio.sleep(fault.hold)
                self.proxy.heal()

    async def recover(
        self, http: httpx.AsyncClient, since: datetime, bound: float | None = None
    ) -> Recovery | None:
        """How long until a leader is agreed, and until a scheduled run finished after
        `since`; None past `bound` (default: the recovery bound)."""
        start = trio.current_time()
        agreed: float | None = None
        with trio.move_on_after(self.recovery_bound if bound is None else bound):
            while True:
                leader = await agreed_leader(http, self.servers)
                if leader is not None:
                    if agreed is None:
                        agreed = trio.current_time() - start
                    latest = await last_run(http, leader, self.tick_jobs)
                    if latest is not None and latest > since:
                        return Recovery(agreed, trio.current_time() - start)
                await trio.sleep(0.1)
        return None

    def _check_alive(self) -> None:
        for node in self.nodes:
            code = node.exit_code()
            if code is not None:
                self.problems.append(
                    f"{node.name} exited by itself with code {code}:\n{node.log_tail()}"
                )
                node.start()
