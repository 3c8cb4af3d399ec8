"""A simulated Raft cluster run under a fault schedule, with every check the simulation makes.

`run_schedule` is the whole experiment: boot the nodes, start the clients, play the faults,
heal everything, then demand liveness (a leader and a committed write within a bound),
convergence (every running member applied every chosen entry, same state), and a
linearizable client history. Safety is checked as it happens by `RaftSafetyChecker`. Any
failure raises `SimulationFailure` (or `SafetyViolation`) naming the time and what broke.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from dkron_trio.raft.errors import NotLeader, ProposalDropped, TransferRejected
from dkron_trio.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Message,
    RaftConfig,
    Role,
)
from dkron_trio.sim.clients import ClientConfig, KvClients, KvServer
from dkron_trio.sim.disk import SimDisk
from dkron_trio.sim.faults import Fault, FaultKind, FaultSchedule
from dkron_trio.sim.kv import KvInput, KvModel, KvOp, KvOutput
from dkron_trio.sim.linearizability import CheckResult, Verdict, check_history
from dkron_trio.sim.loop import Simulation
from dkron_trio.sim.network import RELIABLE, SimNetwork, SimRng
from dkron_trio.sim.raft_node import RaftSimNode, RunStats
from dkron_trio.sim.safety import RaftSafetyChecker

TICK_MS = 100
"""One Raft tick in simulated time (the shell's default)."""
SLOT_MS = 10
"""Delivery granularity: messages reaching a node within one slot form one batch (one Ready)."""


class SimulationFailure(AssertionError):
    """A liveness, convergence or linearizability failure at the end of a run."""


@attrs.frozen
class Bounds:
    """How long the calm phase may take to recover (simulated ms)."""

    recover_ms: int = 8_000
    """From the heal to a stable leader having committed a probe write."""
    drain_ms: int = 3_000
    """Clients stop issuing this long before the end, so that their writes can settle."""


@attrs.frozen
class RunReport:
    schedule: FaultSchedule
    trace_hash: str
    events: int
    operations: int
    completed_ok: int
    max_term: int
    max_chosen: int
    crashes: int
    lossy_crashes: int
    snapshots_installed: int
    compactions: int
    conf_changes_applied: int
    transfers: int
    recovered_after_ms: int
    linearizability: Verdict


@attrs.define
class RaftCluster:
    _schedule: FaultSchedule
    _rng: SimRng
    _config: RaftConfig
    _bounds: Bounds
    _sim: Simulation[Message]
    _checker: RaftSafetyChecker = attrs.field(factory=RaftSafetyChecker)
    _clients: KvClients | None = None
    _disks: dict[int, SimDisk] = attrs.field(factory=dict)
    _nodes: dict[int, RaftSimNode] = attrs.field(factory=dict)
    _ids: list[int] = attrs.field(factory=list)
    _stats: RunStats = attrs.field(factory=RunStats)
    _recovered_at: int | None = None
    _probe: int | None = None

    @classmethod
    def create(
        cls,
        schedule: FaultSchedule,
        rng: SimRng,
        *,
        bounds: Bounds = Bounds(),
        slot_ms: int = SLOT_MS,
    ) -> RaftCluster:
        sim: Simulation[Message] = Simulation(rng, SimNetwork(rng), TICK_MS, slot_ms)
        cluster = cls(schedule, rng, schedule.raft_config(), bounds, sim)
        cluster._clients = KvClients(
            rng,
            ClientConfig(count=schedule.clients),
            cluster._ids,
            cluster._server,
            sim.at,
            sim.flush,
        )
        return cluster

    @property
    def sim(self) -> Simulation[Message]:
        return self._sim

    @property
    def clients(self) -> KvClients:
        assert self._clients is not None
        return self._clients

    def node(self, node_id: int) -> RaftSimNode | None:
        return self._nodes.get(node_id)

    def running(self) -> list[int]:
        return sorted(self._nodes)

    # -- the experiment -------------------------------------------------------------------

    def run(self) -> RunReport:
        schedule = self._schedule
        voters = ConfState(voters=frozenset(range(1, schedule.nodes + 1)))
        for node_id in range(1, schedule.nodes + 1):
            self._disks[node_id] = SimDisk(voters)
            self._ids.append(node_id)
            self._boot(node_id, 0)
        self.clients.start(0)
        for fault in schedule.faults:
            self._sim.at(fault.at, self._fault_action(fault))
        self._sim.at(schedule.fault_ms, self._heal_all)
        self._sim.at(schedule.fault_ms + 1, self._watch_recovery)
        end = schedule.duration_ms
        self._sim.at(max(schedule.fault_ms, end - self._bounds.drain_ms), self._stop_clients)
        self._sim.run_until(end)
        if schedule.calm_ms:
            self._check_recovered(end)
            self._check_converged(end)
        result = self._check_linearizable()
        return RunReport(
            schedule=schedule,
            trace_hash=self._sim.trace_hash(),
            events=self._sim.events,
            operations=len(self.clients.history()),
            completed_ok=self.clients.completed_ok,
            max_term=self._checker.max_term(),
            max_chosen=self._checker.max_chosen,
            crashes=self._stats.crashes,
            lossy_crashes=self._stats.lossy_crashes,
            snapshots_installed=self._stats.snapshots_installed,
            compactions=self._stats.compactions,
            conf_changes_applied=self._stats.conf_changes_applied,
            transfers=self._stats.transfers,
            recovered_after_ms=(
                -1 if self._recovered_at is None else self._recovered_at - schedule.fault_ms
            ),
            linearizability=result.verdict,
        )

    # -- nodes ----------------------------------------------------------------------------

    def _server(self, node_id: int) -> KvServer | None:
        return self._nodes.get(node_id)

    def _boot(self, node_id: int, now: int) -> None:
        node = RaftSimNode.boot(
            node_id,
            self._disks[node_id],
            self._config,
            self._rng,
            checker=self._checker,
            complete=self.clients.complete,
            trace=self._sim.trace,
            snapshot_every=self._schedule.snapshot_every,
            stats=self._stats,
            now=now,
        )
        self._nodes[node_id] = node
        self._sim.start(node_id, node)

    def _crash(self, node_id: int) -> None:
        if node_id not in self._nodes:
            return
        del self._nodes[node_id]
        self._sim.stop(node_id)
        self._checker.on_crash(node_id)
        loss = self._disks[node_id].crash(self._rng)
        self._stats.crashes += 1
        self._stats.lossy_crashes += bool(loss.lost_writes or loss.torn)

    def _crash_action(self, node_id: int) -> Callable[[], None]:
        return lambda: self._crash(node_id)

    def leader(self) -> RaftSimNode | None:
        """The running leader with the highest term, if any."""
        best: RaftSimNode | None = None
        best_term = -1
        for node in self._nodes.values():
            core = node.core
            if core.role is Role.LEADER and core.term > best_term:
                best, best_term = node, core.term
        return best

    # -- faults ---------------------------------------------------------------------------

    def _fault_action(self, fault: Fault) -> Callable[[int], None]:
        def run(now: int) -> None:
            self._sim.trace(-1, fault.at, *fault.nodes)
            self._apply_fault(fault, now)
            for node_id in self.running():
                self._sim.flush(node_id)

        return run

    def _apply_fault(self, fault: Fault, now: int) -> None:
        network = self._sim.network
        others = [i for i in self._ids if i not in fault.nodes]
        match fault.kind:
            case FaultKind.CRASH:
                for node_id in fault.nodes:
                    node = self._nodes.get(node_id)
                    if node is not None and self._rng.random() < 0.5:
                        node.crash_at_next_sync(self._crash_action(node_id))
                    else:
                        self._crash(node_id)
            case FaultKind.RESTART:
                for node_id in fault.nodes:
                    if node_id in self._disks and node_id not in self._nodes:
                        self._boot(node_id, now)
            case FaultKind.PARTITION:
                network.partition(fault.nodes, others)
            case FaultKind.DEAF:
                for node_id in fault.nodes:
                    for other in others:
                        network.block(other, node_id)
            case FaultKind.MUTE:
                for node_id in fault.nodes:
                    for other in others:
                        network.block(node_id, other)
            case FaultKind.HEAL:
                network.heal()
            case FaultKind.LINKS:
                assert fault.conditions is not None
                network.set_conditions(fault.conditions)
            case FaultKind.TRANSFER:
                self._transfer(fault.nodes[0])
            case FaultKind.REMOVE:
                self._propose_change(ConfChange(ConfChangeType.REMOVE_NODE, fault.nodes[0]))
            case FaultKind.ADD:
                self._add_node(now)
            case FaultKind.CAMPAIGN:
                node = self._nodes.get(fault.nodes[0])
                if node is not None:
                    node.core.campaign()

    def _transfer(self, target: int) -> None:
        leader = self.leader()
        if leader is None or leader.node_id == target:
            return
        try:
            leader.core.transfer_leader(target)
        except TransferRejected:
            return  # the target is not a voter (removed, or never added)
        self._stats.transfers += 1

    def _propose_change(self, change: ConfChange) -> None:
        leader = self.leader()
        if leader is None:
            return
        try:
            leader.core.propose_conf_change(change)
        except (NotLeader, ProposalDropped):
            return  # no leader at the moment, or one change still pending: the fault is moot

    def _add_node(self, now: int) -> None:
        node_id = max(self._ids) + 1
        self._ids.append(node_id)
        self._disks[node_id] = SimDisk(ConfState())
        self._boot(node_id, now)
        self._propose_change(ConfChange(ConfChangeType.ADD_LEARNER, node_id))
        self._sim.at(now + 3_000, self._promote(node_id))

    def _promote(self, node_id: int) -> Callable[[int], None]:
        def run(now: int) -> None:
            leader = self.leader()
            if leader is None or node_id not in leader.core.conf_state.learners:
                return
            self._propose_change(ConfChange(ConfChangeType.ADD_NODE, node_id))
            self._sim.flush(leader.node_id)

        return run

    # -- the calm phase -------------------------------------------------------------------

    def _heal_all(self, now: int) -> None:
        self._sim.trace(-2, now)
        self._sim.network.heal()
        self._sim.network.set_conditions(RELIABLE)
        for node_id in self._ids:
            node = self._nodes.get(node_id)
            if node is None:
                self._boot(node_id, now)
            else:
                node.crash_at_next_sync(None)

    def _stop_clients(self, now: int) -> None:
        self.clients.stop()

    def _stable_leader(self) -> RaftSimNode | None:
        """A leader that a majority of its voters, running, follow in its term."""
        leader = self.leader()
        if leader is None:
            return None
        term = leader.core.term
        voters = leader.core.conf_state.voters
        following = 0
        for voter in voters:
            node = self._nodes.get(voter)
            if (
                node is not None
                and node.core.term == term
                and node.core.leader_id == leader.node_id
            ):
                following += 1
        return leader if following * 2 > len(voters) else None

    def _watch_recovery(self, now: int) -> None:
        if self._recovered_at is not None:
            return
        if self._probe is not None and not self.clients.is_outstanding(self._probe):
            if self.clients.succeeded(self._probe):
                self._recovered_at = now
                return
            self._probe = None
        if self._probe is None:
            leader = self._stable_leader()
            if leader is not None:
                probe = KvInput(KvOp.PUT, "a", f"probe.{now}")
                self._probe = self.clients.write(0, leader.node_id, probe, now)
        self._sim.at(now + 50, self._watch_recovery)

    def _check_recovered(self, now: int) -> None:
        deadline = self._schedule.fault_ms + self._bounds.recover_ms
        if self._recovered_at is None or self._recovered_at > deadline:
            raise SimulationFailure(
                f"t={now}: liveness: no stable leader committed a write within "
                f"{self._bounds.recover_ms} ms of the heal at {self._schedule.fault_ms} ms "
                f"(recovered at {self._recovered_at}); {self._describe()}"
            )

    def _check_converged(self, now: int) -> None:
        leader = self._stable_leader()
        if leader is None:
            raise SimulationFailure(f"t={now}: no stable leader at the end; {self._describe()}")
        members = leader.core.conf_state.members
        target = self._checker.max_chosen
        fingerprints = set()
        for member in sorted(members):
            node = self._nodes.get(member)
            if node is None:
                raise SimulationFailure(f"t={now}: member {member} is not running at the end")
            if node.kv.applied < target:
                raise SimulationFailure(
                    f"t={now}: convergence: member {member} applied {node.kv.applied}, "
                    f"but index {target} is committed; {self._describe()}"
                )
            fingerprints.add(node.kv.fingerprint())
        if len(fingerprints) != 1:
            raise SimulationFailure(
                f"t={now}: convergence: members disagree on the state: {sorted(fingerprints)}"
            )

    def _check_linearizable(self) -> CheckResult[KvInput, KvOutput]:
        result = check_history(KvModel(), self.clients.history(), max_steps=2_000_000)
        if not result.ok:
            lines = "\n".join(f"  {op}" for op in result.partition)
            prefix = "\n".join(f"  {op}" for op in result.longest_prefix)
            raise SimulationFailure(
                f"linearizability: {result.verdict.value} after {result.steps} steps; "
                f"partition:\n{lines}\nlongest linearizable prefix:\n{prefix}"
            )
        return result

    def _describe(self) -> str:
        parts = []
        for node_id in self._ids:
            node = self._nodes.get(node_id)
            if node is None:
                parts.append(f"{node_id}: down")
                continue
            s = node.core.status()
            parts.append(
                f"{node_id}: {s.role.value} term {s.term} leader {s.leader_id} commit "
                f"{s.commit} applied {s.applied} last {s.last_index} voters "
                f"{sorted(s.conf_state.voters)} learners {sorted(s.conf_state.learners)}"
            )
        return "; ".join(parts)


def run_schedule(schedule: FaultSchedule, rng: SimRng) -> RunReport:
    """Run one schedule; `rng` must be seeded from `schedule.seed` by the caller."""
    return RaftCluster.create(schedule, rng).run()


def replay_command(schedule: FaultSchedule) -> str:
    """The shell command that replays `schedule` bit for bit."""
    return f"python fuzz/raft_sim.py --schedule '{schedule.encode()}'"
