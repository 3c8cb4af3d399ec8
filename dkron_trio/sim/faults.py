"""Fault schedules for the Raft simulation: what goes wrong when, as a frozen, printable value.

A schedule plus its seed determines a run bit for bit. `encode`/`decode` give the compact text
form a failing test prints and `fuzz/raft_sim.py --schedule` replays; `random_schedule` draws
one from a seeded rng (the fuzzer's source; the tests draw them with hypothesis).
"""

from __future__ import annotations

import enum
import json
from typing import Any

import attrs

from dkron_trio.raft.types import RaftConfig
from dkron_trio.sim.network import RELIABLE, LinkConditions, SimRng


class FaultKind(enum.Enum):
    CRASH = "crash"
    """Power loss on `nodes`, at once or (by the run's rng) in the middle of a node's next
    fsync: unsynced writes are lost or torn. The node stays down until RESTART or the heal."""
    RESTART = "restart"
    PARTITION = "partition"
    """`nodes` on one side, everyone else on the other (added to existing cuts)."""
    DEAF = "deaf"
    """Asymmetric: `nodes` receive nothing but can still send."""
    MUTE = "mute"
    """Asymmetric: what `nodes` send is lost, they still receive."""
    HEAL = "heal"
    """Remove every cut link."""
    LINKS = "links"
    """Change loss, duplication and delay on every link to `conditions`."""
    TRANSFER = "transfer"
    """Ask the current leader to hand leadership to `nodes[0]`."""
    REMOVE = "remove"
    """Ask the current leader to remove voter `nodes[0]`."""
    ADD = "add"
    """Start a node with a fresh id and empty disk; ask the leader to add it as a learner and
    to promote it once it has caught up."""
    CAMPAIGN = "campaign"
    """Make `nodes[0]` start an election now, as if its timeout fired."""


@attrs.frozen
class Fault:
    at: int
    """Simulated milliseconds from the start of the run."""
    kind: FaultKind
    nodes: tuple[int, ...] = ()
    conditions: LinkConditions | None = None

    def __attrs_post_init__(self) -> None:
        if self.at < 0:
            raise ValueError(f"fault {self.kind.value}: negative time {self.at}")
        if self.kind is FaultKind.LINKS and self.conditions is None:
            raise ValueError("fault links: needs conditions")
        needs_node = self.kind not in (FaultKind.HEAL, FaultKind.LINKS, FaultKind.ADD)
        if needs_node and not self.nodes:
            raise ValueError(f"fault {self.kind.value}: needs at least one node")


@attrs.frozen
class FaultSchedule:
    """Everything a run depends on besides the code: seed, cluster shape, faults, durations."""

    seed: int
    nodes: int = 5
    fault_ms: int = 50_000
    """Faults happen in [0, fault_ms); then every fault is healed."""
    calm_ms: int = 10_000
    """The calm phase that follows: liveness is checked here."""
    faults: tuple[Fault, ...] = ()
    clients: int = 3
    snapshot_every: int = 20
    """Applied entries between local snapshots (0: never compact)."""
    heartbeat_ticks: int = 1
    max_inflight: int = 8

    def __attrs_post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"nodes: need at least one, got {self.nodes}")
        if self.fault_ms < 0 or self.calm_ms < 0:
            raise ValueError("fault_ms and calm_ms must be >= 0")
        for fault in self.faults:
            if fault.at >= self.fault_ms:
                raise ValueError(
                    f"fault {fault.kind.value} at {fault.at} ms is not inside the fault phase "
                    f"[0, {self.fault_ms})"
                )

    @property
    def duration_ms(self) -> int:
        return self.fault_ms + self.calm_ms

    def raft_config(self) -> RaftConfig:
        """Raft's defaults, with small limits so that short runs exercise paging, flow
        control, chunked snapshots and followers that need one."""
        return RaftConfig(
            heartbeat_ticks=self.heartbeat_ticks,
            max_inflight_msgs=self.max_inflight,
            max_size_per_msg=200,
            snapshot_chunk_size=48,
            compaction_keep_entries=5,
        )

    def encode(self) -> str:
        """Compact JSON, for failure messages and `fuzz/raft_sim.py --schedule`."""
        return json.dumps(_to_plain(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> FaultSchedule:
        try:
            plain = json.loads(text)
            faults = tuple(
                Fault(
                    at=f["at"],
                    kind=FaultKind(f["kind"]),
                    nodes=tuple(f.get("nodes", ())),
                    conditions=(LinkConditions(**f["conditions"]) if "conditions" in f else None),
                )
                for f in plain.pop("faults", ())
            )
            return cls(faults=faults, **plain)
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"not a fault schedule: {e}") from e


def _to_plain(schedule: FaultSchedule) -> dict[str, Any]:
    plain: dict[str, Any] = attrs.asdict(schedule, recurse=False)
    faults = []
    for fault in schedule.faults:
        f: dict[str, Any] = {"at": fault.at, "kind": fault.kind.value}
        if fault.nodes:
            f["nodes"] = list(fault.nodes)
        if fault.conditions is not None:
            f["conditions"] = attrs.asdict(fault.conditions)
        faults.append(f)
    plain["faults"] = faults
    return plain


FAULT_WEIGHTS: tuple[tuple[FaultKind, int], ...] = (
    # How often each kind is drawn: crashes, restarts, partitions and heals dominate.
    (FaultKind.CRASH, 4),
    (FaultKind.RESTART, 4),
    (FaultKind.PARTITION, 4),
    (FaultKind.DEAF, 1),
    (FaultKind.MUTE, 1),
    (FaultKind.HEAL, 4),
    (FaultKind.LINKS, 3),
    (FaultKind.TRANSFER, 2),
    (FaultKind.REMOVE, 1),
    (FaultKind.ADD, 1),
    (FaultKind.CAMPAIGN, 1),
)


def random_conditions(rng: SimRng) -> LinkConditions:
    """Anything from a clean LAN to a lossy, duplicating, slow network."""
    if rng.random() < 0.2:
        return RELIABLE
    low = rng.randrange(0, 20)
    return LinkConditions(
        drop=rng.randrange(0, 31) / 100,
        duplicate=rng.randrange(0, 21) / 100,
        min_delay=low,
        max_delay=low + rng.randrange(0, 300),
    )


def random_fault(rng: SimRng, at: int, node_ids: int) -> Fault:
    """One fault on a cluster whose ids run 1..node_ids."""
    total = sum(w for _, w in FAULT_WEIGHTS)
    pick = rng.randrange(0, total)
    kind = FAULT_WEIGHTS[-1][0]
    for candidate, weight in FAULT_WEIGHTS:
        if pick < weight:
            kind = candidate
            break
        pick -= weight
    node = rng.randrange(1, node_ids + 1)
    match kind:
        case FaultKind.HEAL | FaultKind.ADD:
            return Fault(at, kind)
        case FaultKind.LINKS:
            return Fault(at, kind, conditions=random_conditions(rng))
        case FaultKind.PARTITION:
            size = rng.randrange(1, node_ids // 2 + 1)
            side = sorted({rng.randrange(1, node_ids + 1) for _ in range(size)})
            return Fault(at, kind, tuple(side))
        case _:
            return Fault(at, kind, (node,))


def random_schedule(
    rng: SimRng,
    seed: int,
    *,
    nodes: int = 5,
    fault_ms: int = 50_000,
    calm_ms: int = 10_000,
    max_faults: int = 24,
) -> FaultSchedule:
    """A schedule of up to `max_faults` random faults; `seed` is recorded for the run's rng."""
    count = rng.randrange(0, max_faults + 1)
    times = sorted(rng.randrange(0, fault_ms) for _ in range(count))
    faults = tuple(random_fault(rng, t, nodes) for t in times)
    return FaultSchedule(
        seed=seed,
        nodes=nodes,
        fault_ms=fault_ms,
        calm_ms=calm_ms,
        faults=faults,
        clients=rng.randrange(2, 5),
        snapshot_every=(0, 10, 25, 60)[rng.randrange(0, 4)],
        heartbeat_ticks=rng.randrange(1, 4),
        max_inflight=(1, 2, 8, 256)[rng.randrange(0, 4)],
    )
