"""The figures of a chaos run, its violations, and the summary table printed at the end."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import attrs


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@attrs.frozen
class RunReport:
    """Everything the summary shows; `violations` lists each broken promise in words."""

    seed: int
    servers: int
    agents: int
    duration: float
    faults: Counter[str]
    operations: Counter[str]
    linearizability: str
    lost_writes: int
    duplicate_ticks: int
    unexplained_ticks: int
    scheduled_runs: int
    recoveries: tuple[float, ...]
    leader_recoveries: tuple[float, ...]
    violations: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "servers": self.servers,
            "agents": self.agents,
            "duration_s": self.duration,
            "faults": dict(sorted(self.faults.items())),
            "operations": dict(sorted(self.operations.items())),
            "linearizability": self.linearizability,
            "lost_writes": self.lost_writes,
            "duplicate_ticks": self.duplicate_ticks,
            "unexplained_ticks": self.unexplained_ticks,
            "scheduled_runs": self.scheduled_runs,
            "recovery_p50_s": _round(percentile(self.recoveries, 50)),
            "recovery_p99_s": _round(percentile(self.recoveries, 99)),
            "recovery_max_s": _round(max(self.recoveries, default=math.nan)),
            "leader_p50_s": _round(percentile(self.leader_recoveries, 50)),
            "leader_p99_s": _round(percentile(self.leader_recoveries, 99)),
            "violations": list(self.violations),
        }

    def table(self) -> str:
        ops_total = sum(self.operations.values())
        rows = [
            ("seed", str(self.seed)),
            ("cluster", f"{self.servers} servers + {self.agents} agents"),
            ("duration", f"{self.duration:.0f} s"),
            (
                "faults",
                ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none",
            ),
            ("operations", f"{ops_total} ({_ops(self.operations)})"),
            ("linearizable", self.linearizability),
            ("lost writes", str(self.lost_writes)),
            ("scheduled runs", str(self.scheduled_runs)),
            ("duplicate ticks", str(self.duplicate_ticks)),
            ("unexplained misses", str(self.unexplained_ticks)),
            (
                "recovery p50/p99/max",
                f"{percentile(self.recoveries, 50):.2f} / "
                f"{percentile(self.recoveries, 99):.2f} / "
                f"{max(self.recoveries, default=math.nan):.2f} s "
                f"({len(self.recoveries)} heals)",
            ),
            (
                "leader agreed p50/p99",
                f"{percentile(self.leader_recoveries, 50):.2f} / "
                f"{percentile(self.leader_recoveries, 99):.2f} s",
            ),
            ("violations", str(len(self.violations))),
        ]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
        lines += [f"  VIOLATION: {v}" for v in self.violations]
        return "\n".join(lines)


def _ops(ops: Counter[str]) -> str:
    by_outcome: Counter[str] = Counter()
    for key, n in ops.items():
        by_outcome[key.split()[-1]] += n
    return ", ".join(f"{k} {v}" for k, v in sorted(by_outcome.items()))


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 3)
