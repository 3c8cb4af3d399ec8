"""The nemesis schedule: which fault, on which nodes, for how long, drawn from a seeded RNG.

The schedule is a pure function of the seed and the node names, so printing the seed is
enough to replay the same sequence of faults (their timing also depends on how fast the
cluster recovers, which is what is measured).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, MutableSequence, Sequence
from typing import Protocol, TypeVar

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


class Rng(Protocol):
    """The part of `random.Random` the schedule uses."""

    def uniform(self, a: float, b: float) -> float: ...

    def choice(self, seq: Sequence[T]) -> T: ...

    def shuffle(self, x: MutableSequence[object]) -> None: ...

    def randint(self, a: int, b: int) -> int: ...


@attrs.frozen
class Fault:
    """One fault: `targets` are the nodes hit (for a partition, one side; the rest of the
    nodes form the other), `quiet` the healthy wait before it, `hold` how long it lasts."""

    kind: FaultKind
    targets: tuple[str, ...]
    quiet: float
    hold: float

    def describe(self) -> str:
        return f"{self.kind.value} {','.join(self.targets)} for {self.hold:.1f}s"


@attrs.frozen
class FaultPlan:
    """How faults are drawn: the kinds in use, and the ranges of quiet and hold times."""

    kinds: tuple[FaultKind, ...]
    servers: tuple[str, ...]
    agents: tuple[str, ...]
    quiet: tuple[float, float] = (1.0, 3.0)
    hold: tuple[float, float] = (1.0, 4.0)

    def __attrs_post_init__(self) -> None:
        if not self.kinds:
            raise ValueError("no fault kinds to draw from")
        if len(self.servers) < 3:
            raise ValueError("a partition or a kill needs at least 3 servers")


def schedule(plan: FaultPlan, rng: Rng) -> Iterator[Fault]:
    """An endless schedule; every kind appears once in each round of len(kinds) faults."""
    nodes = (*plan.servers, *plan.agents)
    while True:
        kinds: list[object] = list(plan.kinds)
        rng.shuffle(kinds)
        for kind in kinds:
            assert isinstance(kind, FaultKind)
            yield Fault(
                kind,
                _targets(kind, plan, nodes, rng),
                rng.uniform(*plan.quiet),
                rng.uniform(*plan.hold),
            )


def _targets(kind: FaultKind, plan: FaultPlan, nodes: Sequence[str], rng: Rng) -> tuple[str, ...]:
    match kind:
        case FaultKind.KILL | FaultKind.PAUSE:
            return (rng.choice(nodes),)
        case FaultKind.CRASH_ALL:
            return tuple(nodes)
        case FaultKind.PARTITION:
            # A minority of the servers, possibly with some agents, cut off from the rest.
            servers: list[object] = list(plan.servers)
            rng.shuffle(servers)
            minority = [str(s) for s in servers[: rng.randint(1, (len(servers) - 1) // 2)]]
            minority += [a for a in plan.agents if rng.randint(0, 1)]
            return tuple(minority)
