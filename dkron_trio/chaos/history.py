"""The job store as the chaos workload sees it: one register per job name, and its checks.

Each client write stores a job whose ``displayname`` is a value never written before, so a
read names the one write it observed. DELETE answers the deleted job (or 404), so it is a
read-and-clear. The model feeds `dkron_trio.sim.linearizability`; `lost_writes` is the
plainer question "is every acknowledged write still there, or overwritten by a write that
may have come after it?" asked of the final state read through the leader.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Mapping, Sequence

import attrs

from dkron_trio.sim.linearizability import Operation, Outcome


class JobOp(enum.Enum):
    PUT = "put"
    DELETE = "delete"
    GET = "get"


@attrs.frozen
class JobInput:
    """`value` is the displayname a PUT stores (None for GET and DELETE)."""

    op: JobOp
    name: str
    value: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.op is JobOp.PUT) != (self.value is not None):
            raise ValueError(f"{self.op.value} of {self.name!r}: a value iff PUT")


@attrs.frozen
class JobOutput:
    """What the client was told: the value read or deleted (None: no such job)."""

    value: str | None = None


JobHistory = Sequence[Operation[JobInput, JobOutput]]


def apply_job_op(current: str | None, op_input: JobInput) -> tuple[str | None, JobOutput]:
    """One operation on one job name's value: the next value and the answer."""
    match op_input.op:
        case JobOp.PUT:
            return op_input.value, JobOutput()
        case JobOp.DELETE:
            return None, JobOutput(current)
        case JobOp.GET:
            return current, JobOutput(current)


class JobModel:
    """The sequential specification: a register per job name, histories split per name."""

    def init(self) -> str | None:
        return None

    def step(
        self, state: str | None, op_input: JobInput, output: JobOutput | None
    ) -> tuple[bool, str | None]:
        new_state, expected = apply_job_op(state, op_input)
        return (output is None or output == expected), new_state

    def partition(self, history: JobHistory) -> list[list[Operation[JobInput, JobOutput]]]:
        by_name: defaultdict[str, list[Operation[JobInput, JobOutput]]] = defaultdict(list)
        for op in history:
            by_name[op.input.name].append(op)
        return [by_name[name] for name in sorted(by_name)]


@attrs.frozen
class LostWrite:
    """An acknowledged PUT whose value is gone although no later write could explain it."""

    name: str
    value: str
    final: str | None


def _writes(op: Operation[JobInput, JobOutput]) -> bool:
    return op.input.op is not JobOp.GET and op.outcome is not Outcome.FAIL


def lost_writes(history: JobHistory, final: Mapping[str, str | None]) -> list[LostWrite]:
    """Acknowledged PUTs whose value is not the final one, with no write (acknowledged or of
    unknown outcome) that does not strictly precede them to have replaced it.

    `final` maps every name the workload used to the value read at the end (None: absent).
    """
    lost: list[LostWrite] = []
    writes = [op for op in history if _writes(op)]
    for op in writes:
        if op.input.op is not JobOp.PUT or op.outcome is not Outcome.OK:
            continue
        name = op.input.name
        now = final.get(name)
        if now == op.input.value:
            continue
        possible = {
            later.input.value
            for later in writes
            if later is not op
            and later.input.name == name
            and (later.ret is None or later.outcome is not Outcome.OK or later.ret >= op.call)
        }
        if now not in possible:
            assert op.input.value is not None
            lost.append(LostWrite(name, op.input.value, now))
    return lost
