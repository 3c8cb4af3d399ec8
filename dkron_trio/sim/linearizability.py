"""Linearizability checking of concurrent client histories.

The search is Wing & Gong's, with Lowe's memoisation of (set of linearized operations, model
state) pairs already explored, and histories split into independent partitions first (per key
for a key-value store), as porcupine does. A history is a sequence of frozen `Operation`
values: the format the simulator and the chaos harness record and this module checks.

Outcomes follow Jepsen's vocabulary. An `OK` operation took effect exactly once, somewhere
between its call and its return, and produced the recorded output. A `FAIL` operation
definitely took no effect and is ignored. An `UNKNOWN` operation (Jepsen's *info*: a timeout,
a crash of the node serving it, a call still pending when the history ended) may or may not
have taken effect, at any time after its call; its output is unknown, and the search is free to
leave it out.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Sequence
from typing import Generic, Protocol, TypeVar

import attrs

InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")
StateT = TypeVar("StateT", bound=Hashable)


class Outcome(enum.Enum):
    """How a client operation ended, as far as the client could tell."""

    OK = "ok"
    FAIL = "fail"
    UNKNOWN = "info"


@attrs.frozen
class Operation(Generic[InputT, OutputT]):
    """One client operation in a history.

    `call` and `ret` are integer timestamps from one clock shared by all clients (simulated
    milliseconds, or monotonic nanoseconds in a real run). Operation A precedes B iff
    ``A.ret < B.call``; touching intervals count as concurrent. `ret` and `output` are required
    for `OK` and ignored otherwise.
    """

    client: int
    input: InputT
    call: int
    outcome: Outcome
    output: OutputT | None = None
    ret: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.outcome is Outcome.OK:
            if self.ret is None:
                raise ValueError(f"operation {self.input!r}: an OK operation needs a return time")
            if self.ret < self.call:
                raise ValueError(
                    f"operation {self.input!r}: returns at {self.ret} before its call at "
                    f"{self.call}"
                )


class Model(Protocol[StateT, InputT, OutputT]):
    """A sequential specification the history must be equivalent to.

    States must be hashable and immutable: they are memoised.
    """

    def init(self) -> StateT:
        """The state before any operation."""
        ...

    def step(self, state: StateT, op_input: InputT, output: OutputT | None) -> tuple[bool, StateT]:
        """Apply one operation; return whether `output` is legal from `state`, and the next state.

        `output` is None for an operation whose outcome is unknown: any output is legal then, and
        the next state is the one the operation would produce if it took effect.
        """
        ...

    def partition(
        self, history: Sequence[Operation[InputT, OutputT]]
    ) -> list[list[Operation[InputT, OutputT]]]:
        """Split the history into parts that can be checked independently (e.g. per key)."""
        ...


class Verdict(enum.Enum):
    """The answer of a check."""

    LINEARIZABLE = "linearizable"
    ILLEGAL = "illegal"
    UNDECIDED = "undecided"  # the step budget ran out first


@attrs.frozen
class CheckResult(Generic[InputT, OutputT]):
    """A verdict, and for a non-linearizable history the partition that fails with the longest
    linearizable sequence the search found in it (a good place to start reading)."""

    verdict: Verdict
    partition: tuple[Operation[InputT, OutputT], ...] = ()
    longest_prefix: tuple[Operation[InputT, OutputT], ...] = ()
    steps: int = 0

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.LINEARIZABLE


@attrs.define(eq=False)
class _Entry:
    """A call or return in the doubly linked, time-ordered list the search lifts ops out of."""

    op: int
    is_call: bool
    match: _Entry | None = None
    prev: _Entry | None = None
    next: _Entry | None = None


def _build_list(ops: Sequence[Operation[InputT, OutputT]]) -> _Entry:
    events: list[tuple[int, int, int, _Entry]] = []
    for i, op in enumerate(ops):
        call = _Entry(op=i, is_call=True)
        events.append((op.call, 0, i, call))
        if op.outcome is Outcome.OK:
            assert op.ret is not None
            ret = _Entry(op=i, is_call=False)
            call.match = ret
            events.append((op.ret, 1, i, ret))
    # Calls sort before returns at equal times, so touching operations stay concurrent.
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    head = _Entry(op=-1, is_call=False)
    prev = head
    for _, _, _, entry in events:
        prev.next = entry
        entry.prev = prev
        prev = entry
    return head


def _unlink(entry: _Entry) -> None:
    assert entry.prev is not None
    entry.prev.next = entry.next
    if entry.next is not None:
        entry.next.prev = entry.prev


def _relink(entry: _Entry) -> None:
    assert entry.prev is not None
    entry.prev.next = entry
    if entry.next is not None:
        entry.next.prev = entry


def _lift(entry: _Entry) -> None:
    _unlink(entry)
    if entry.match is not None:
        _unlink(entry.match)


def _unlift(entry: _Entry) -> None:
    if entry.match is not None:
        _relink(entry.match)
    _relink(entry)


def check_partition(
    model: Model[StateT, InputT, OutputT],
    ops: Sequence[Operation[InputT, OutputT]],
    *,
    max_steps: int | None = None,
) -> CheckResult[InputT, OutputT]:
    """Search for a linearization of `ops` (one partition) against `model`."""
    ops = [op for op in ops if op.outcome is not Outcome.FAIL]
    head = _build_list(ops)
    required_left = sum(1 for op in ops if op.outcome is Outcome.OK)
    state = model.init()
    linearized = 0
    cache: set[tuple[int, StateT]] = set()
    calls: list[tuple[_Entry, StateT]] = []
    longest: list[int] = []
    entry = head.next
    steps = 0
    while required_left:
        steps += 1
        if max_steps is not None and steps > max_steps:
            return CheckResult(Verdict.UNDECIDED, tuple(ops), _ops_at(ops, longest), steps)
        # While required ops remain, one of their returns lies ahead: the scan never runs off.
        assert entry is not None
        if entry.is_call:
            op = ops[entry.op]
            output = op.output if op.outcome is Outcome.OK else None
            legal, new_state = model.step(state, op.input, output)
            if legal:
                new_linearized = linearized | (1 << entry.op)
                key = (new_linearized, new_state)
                if key not in cache:
                    cache.add(key)
                    calls.append((entry, state))
                    if len(calls) > len(longest):
                        longest = [e.op for e, _ in calls]
                    state = new_state
                    linearized = new_linearized
                    _lift(entry)
                    if op.outcome is Outcome.OK:
                        required_left -= 1
                    entry = head.next
                    continue
            entry = entry.next
            continue
        # A return: its operation must be linearized before anything after it. Backtrack.
        if not calls:
            return CheckResult(Verdict.ILLEGAL, tuple(ops), _ops_at(ops, longest), steps)
        entry, state = calls.pop()
        linearized &= ~(1 << entry.op)
        _unlift(entry)
        if ops[entry.op].outcome is Outcome.OK:
            required_left += 1
        entry = entry.next
    return CheckResult(Verdict.LINEARIZABLE, steps=steps)


def _ops_at(
    ops: Sequence[Operation[InputT, OutputT]], indexes: Sequence[int]
) -> tuple[Operation[InputT, OutputT], ...]:
    return tuple(ops[i] for i in indexes)


def check_history(
    model: Model[StateT, InputT, OutputT],
    history: Sequence[Operation[InputT, OutputT]],
    *,
    max_steps: int | None = None,
) -> CheckResult[InputT, OutputT]:
    """Check a whole history: every partition must be linearizable.

    `max_steps` bounds the search per partition; past it the verdict is UNDECIDED (unless some
    partition is already known ILLEGAL).
    """
    undecided: CheckResult[InputT, OutputT] | None = None
    total = 0
    for part in model.partition(history):
        result = check_partition(model, part, max_steps=max_steps)
        total += result.steps
        if result.verdict is Verdict.ILLEGAL:
            return attrs.evolve(result, steps=total)
        if result.verdict is Verdict.UNDECIDED and undecided is None:
            undecided = result
    if undecided is not None:
        return attrs.evolve(undecided, steps=total)
    return CheckResult(Verdict.LINEARIZABLE, steps=total)


@attrs.define
class HistoryRecorder(Generic[InputT, OutputT]):
    """Collects operations as clients call and complete them; pending calls end as UNKNOWN."""

    _calls: list[tuple[int, InputT, int]] = attrs.field(factory=list)
    _done: dict[int, Operation[InputT, OutputT]] = attrs.field(factory=dict)

    def invoke(self, client: int, op_input: InputT, now: int) -> int:
        """Record a call; return a handle to complete it with."""
        self._calls.append((client, op_input, now))
        return len(self._calls) - 1

    def ok(self, handle: int, output: OutputT, now: int) -> None:
        client, op_input, call = self._pending(handle)
        self._done[handle] = Operation(client, op_input, call, Outcome.OK, output, now)

    def fail(self, handle: int) -> None:
        client, op_input, call = self._pending(handle)
        self._done[handle] = Operation(client, op_input, call, Outcome.FAIL)

    def unknown(self, handle: int) -> None:
        client, op_input, call = self._pending(handle)
        self._done[handle] = Operation(client, op_input, call, Outcome.UNKNOWN)

    def _pending(self, handle: int) -> tuple[int, InputT, int]:
        if not 0 <= handle < len(self._calls):
            raise KeyError(f"no operation with handle {handle}")
        if handle in self._done:
            raise ValueError(f"operation {handle} already completed as {self._done[handle]!r}")
        return self._calls[handle]

    def history(self) -> tuple[Operation[InputT, OutputT], ...]:
        """All operations in call order; calls never completed are UNKNOWN."""
        out: list[Operation[InputT, OutputT]] = []
        for handle, (client, op_input, call) in enumerate(self._calls):
            done = self._done.get(handle)
            out.append(done or Operation(client, op_input, call, Outcome.UNKNOWN))
        return tuple(out)
