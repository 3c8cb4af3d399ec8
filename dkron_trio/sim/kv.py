"""A key-value register: the operations simulated clients issue and their sequential spec.

The same `apply_kv` defines both what the simulated state machine does with a committed
command and what the linearizability model expects, so a failing check points at ordering
(the replication), never at a disagreement between two definitions of `cas`.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Sequence

import attrs

from dkron_trio.sim.linearizability import Operation


class KvOp(enum.Enum):
    GET = "get"
    PUT = "put"
    DELETE = "delete"
    CAS = "cas"


@attrs.frozen
class KvInput:
    """`value` is what PUT/CAS write; `expected` is what CAS compares against (None = absent)."""

    op: KvOp
    key: str
    value: str | None = None
    expected: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.op in (KvOp.PUT, KvOp.CAS) and self.value is None:
            raise ValueError(f"{self.op.value} on {self.key!r} needs a value")


@attrs.frozen
class KvOutput:
    """`value` is what GET read; `ok` is whether a CAS swapped (always True otherwise)."""

    value: str | None = None
    ok: bool = True


def apply_kv(current: str | None, op_input: KvInput) -> tuple[str | None, KvOutput]:
    """One operation on one key's value: the new value and what the client is told."""
    match op_input.op:
        case KvOp.GET:
            return current, KvOutput(value=current)
        case KvOp.PUT:
            return op_input.value, KvOutput()
        case KvOp.DELETE:
            return None, KvOutput()
        case KvOp.CAS:
            if current == op_input.expected:
                return op_input.value, KvOutput(ok=True)
            return current, KvOutput(ok=False)


class KvModel:
    """The linearizability model of one register per key; histories are partitioned per key."""

    def init(self) -> str | None:
        return None

    def step(
        self, state: str | None, op_input: KvInput, output: KvOutput | None
    ) -> tuple[bool, str | None]:
        new_state, expected = apply_kv(state, op_input)
        return (output is None or output == expected), new_state

    def partition(
        self, history: Sequence[Operation[KvInput, KvOutput]]
    ) -> list[list[Operation[KvInput, KvOutput]]]:
        by_key: defaultdict[str, list[Operation[KvInput, KvOutput]]] = defaultdict(list)
        for op in history:
            by_key[op.input.key].append(op)
        return [by_key[key] for key in sorted(by_key)]
