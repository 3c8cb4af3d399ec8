"""The nemesis schedule: which faults, on which nodes, for how long, drawn from a seeded RNG.

The schedule is a pure function of the seed and the node names, so printing the seed is
enough to replay the same sequence of faults (their timing also depends on how fast the
cluster recovers, which is what is measured).

Faults come in steps. A whole-cluster crash is a step of its own. The single-node kinds
(kill, pause, partition) either each get a step (`concurrent` off), or share one step, held
at the same time on disjoint nodes: that packs more faults into a short run, and the nodes
hit together never include a majority of the servers, so the cluster stays available while
they last and the workload keeps writing through them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, MutableSequence, Sequence
from typing import Any, Protocol, TypeVar

import attrs

T = TypeVar("T")


class FaultKind(enum.Enum):
    KILL = "kill"
    """kill -9 of one node, restarted when the fault heals."""
    PAUSE = "pause"
    """SIGSTOP of one node, SIGCONT when the fault heals."""
    CRASH_ALL = "crash-all"
    """kill -9 of every node at once, all restarted when the fault heals."""
    PARTITION = "partition"
    """RPC connections between two groups of nodes dropped, until the fault heals."""


SINGLE_KINDS = (FaultKind.KILL, FaultKind.PAUSE, FaultKind.PARTITION)
"""The kinds that hit some nodes, not the whole cluster: they may share a step."""


class Rng(Protocol):
    """The part of `random.Random` the schedule uses."""

    def uniform(self, a: float, b: float) -> float: ...

    def choice(self, seq: Sequence[T]) -> T: ...

    def shuffle(self, x: MutableSequence[Any]) -> None: ...

    def randint(self, a: int, b: int) -> int: ...


@attrs.frozen
class Fault:
    """One fault: `targets` are the nodes hit (for a partition, one side; the rest of the
    nodes form the other), `hold` how long it lasts before it heals."""

    kind: FaultKind
    targets: tuple[str, ...]
    hold: float

    def describe(self) -> str:
        return f"{self.kind.value} {','.join(self.targets)} for {self.hold:.1f}s"


@attrs.frozen
class Step:
    """Faults applied together after `quiet` healthy seconds; the step ends when the last
    of them heals, and recovery is measured from there."""

    faults: tuple[Fault, ...]
    quiet: float

    @property
    def hold(self) -> float:
        return max(f.hold for f in self.faults)

    def describe(self) -> str:
        return " + ".join(f.describe() for f in self.faults)


@attrs.frozen
class FaultPlan:
    """How faults are drawn: the kinds in use, the ranges of quiet and hold times (a
    whole-cluster crash has its own hold range), and whether single-node kinds share steps."""

    kinds: tuple[FaultKind, ...]
    servers: tuple[str, ...]
    agents: tuple[str, ...]
    quiet: tuple[float, float] = (1.0, 3.0)
    hold: tuple[float, float] = (1.0, 4.0)
    crash_hold: tuple[float, float] = (1.0, 3.0)
    concurrent: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.kinds:
            raise ValueError("no fault kinds to draw from")
        if len(self.servers) < 3:
            raise ValueError("a partition or a kill needs at least 3 servers")
        for name, (low, high) in (
            ("quiet", self.quiet),
            ("hold", self.hold),
            ("crash_hold", self.crash_hold),
        ):
            if not 0 <= low <= high:
                raise ValueError(f"{name}: need 0 <= low <= high, got ({low}, {high})")
        singles = [k for k in self.kinds if k in SINGLE_KINDS]
        if self.concurrent and len(singles) > self.minority + len(self.agents):
            raise ValueError(
                f"concurrent: {len(singles)} kinds need as many nodes, and only a minority "
                f"of the servers may be hit at once; add agents or servers"
            )

    @property
    def minority(self) -> int:
        """The most servers one step may take out while a majority keeps a quorum."""
        return (len(self.servers) - 1) // 2


def schedule(plan: FaultPlan, rng: Rng) -> Iterator[tuple[Step, ...]]:
    """An endless schedule of rounds; every kind appears once in each round."""
    singles = tuple(k for k in plan.kinds if k in SINGLE_KINDS)
    while True:
        groups: list[tuple[FaultKind, ...]] = []
        if FaultKind.CRASH_ALL in plan.kinds:
            groups.append((FaultKind.CRASH_ALL,))
        if plan.concurrent and singles:
            groups.append(singles)
        else:
            groups += [(k,) for k in singles]
        rng.shuffle(groups)
        yield tuple(_step(plan, group, rng) for group in groups)


def _step(plan: FaultPlan, kinds: tuple[FaultKind, ...], rng: Rng) -> Step:
    quiet = rng.uniform(*plan.quiet)
    if kinds == (FaultKind.CRASH_ALL,):
        everyone = (*plan.servers, *plan.agents)
        return Step((Fault(FaultKind.CRASH_ALL, everyone, rng.uniform(*plan.crash_hold)),), quiet)
    # One node per kind first. Each pick uses up one node of the capacity (free agents plus
    # the servers still allowed), which the plan checked is at least the number of kinds.
    free_servers = list(plan.servers)
    free_agents = list(plan.agents)
    budget = plan.minority
    picked: dict[FaultKind, list[str]] = {}
    for kind in kinds:
        candidates = [*(free_servers if budget else []), *free_agents]
        node = rng.choice(candidates)
        if node in free_servers:
            free_servers.remove(node)
            budget -= 1
        else:
            free_agents.remove(node)
        picked[kind] = [node]
    if FaultKind.PARTITION in picked:
        # The partitioned side may take more servers (within the minority) and agents.
        rng.shuffle(free_servers)
        picked[FaultKind.PARTITION] += free_servers[: rng.randint(0, budget)]
        picked[FaultKind.PARTITION] += [a for a in free_agents if rng.randint(0, 1)]
    faults = tuple(Fault(k, tuple(picked[k]), rng.uniform(*plan.hold)) for k in kinds)
    return Step(faults, quiet)
