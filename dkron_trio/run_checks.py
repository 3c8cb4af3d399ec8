"""Checks of the run promises over a job's records (DESIGN.md §5): no attempt ran twice, and
every tick in a window either has an execution or a missed-tick record with a reason.

Pure: the end-to-end tests and the chaos harness read the records and call `check_runs`.
"""

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from enum import Enum

import attrs

from dkron_trio.execution import Execution, MissedTick
from dkron_trio.job import Job


class ViolationKind(Enum):
    DUPLICATE = "duplicate"
    """An attempt of a tick started twice on one node, or on more nodes than allowed."""
    UNEXPLAINED = "unexplained"
    """A tick with neither an execution nor a missed-tick record."""


@attrs.frozen
class Violation:
    kind: ViolationKind
    job: str
    scheduled_at: datetime
    detail: str


def check_runs(
    job: Job,
    executions: Sequence[Execution],
    missed: Sequence[MissedTick],
    *,
    until: datetime,
    max_targets: int | None = None,
) -> list[Violation]:
    """Violations of `job`'s records, for the ticks from its first recorded one to `until`.

    `max_targets` bounds how many nodes one attempt may run on (1 for a ``value:1`` tag)."""
    found: list[Violation] = []
    scheduled = [e for e in executions if e.scheduled_at is not None]
    per_node = Counter((e.scheduled_at, e.attempt, e.node_name) for e in scheduled)
    for (at, attempt, node), n in sorted(per_node.items(), key=lambda kv: str(kv[0])):
        if n > 1 and at is not None:
            found.append(
                Violation(
                    ViolationKind.DUPLICATE, job.name, at, f"attempt {attempt} x{n} on {node}"
                )
            )
    if max_targets is not None:
        per_attempt = Counter((e.scheduled_at, e.attempt) for e in scheduled)
        for (at, attempt), n in sorted(per_attempt.items(), key=lambda kv: str(kv[0])):
            if n > max_targets and at is not None:
                found.append(
                    Violation(
                        ViolationKind.DUPLICATE,
                        job.name,
                        at,
                        f"attempt {attempt} on {n} nodes (at most {max_targets})",
                    )
                )
    seen = {e.scheduled_at for e in scheduled} | {m.scheduled_at for m in missed}
    if not seen:
        return found
    schedule = job.schedule_obj()
    tick: datetime | None = min(t for t in seen if t is not None)
    while tick is not None and tick <= until:
        if tick not in seen:
            found.append(Violation(ViolationKind.UNEXPLAINED, job.name, tick, "no record"))
        tick = schedule.next_after(tick)
    return found
