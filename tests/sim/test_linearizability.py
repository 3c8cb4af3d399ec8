"""The linearizability checker on hand-made histories and against a brute-force oracle."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dkron_trio.sim.kv import KvInput, KvModel, KvOp, KvOutput, apply_kv
from dkron_trio.sim.linearizability import (
    HistoryRecorder,
    Operation,
    Outcome,
    Verdict,
    check_history,
)

KvOperation = Operation[KvInput, KvOutput]
MODEL = KvModel()


def put(key: str, value: str, call: int, ret: int | None, client: int = 0) -> KvOperation:
    if ret is None:
        return Operation(client, KvInput(KvOp.PUT, key, value), call, Outcome.UNKNOWN)
    return Operation(client, KvInput(KvOp.PUT, key, value), call, Outcome.OK, KvOutput(), ret)


def get(key: str, seen: str | None, call: int, ret: int, client: int = 0) -> KvOperation:
    return Operation(client, KvInput(KvOp.GET, key), call, Outcome.OK, KvOutput(value=seen), ret)


def cas(
    key: str, expected: str | None, value: str, swapped: bool, *, call: int, ret: int
) -> KvOperation:
    return Operation(
        0, KvInput(KvOp.CAS, key, value, expected), call, Outcome.OK, KvOutput(ok=swapped), ret
    )


def verdict(history: Sequence[KvOperation]) -> Verdict:
    return check_history(MODEL, history).verdict


def test_empty_history_is_linearizable() -> None:
    assert verdict([]) is Verdict.LINEARIZABLE


def test_sequential_read_of_the_last_write() -> None:
    assert verdict([put("x", "1", 0, 1), get("x", "1", 2, 3)]) is Verdict.LINEARIZABLE
    assert verdict([put("x", "1", 0, 1), get("x", None, 2, 3)]) is Verdict.ILLEGAL
    assert verdict([put("x", "1", 0, 1), get("x", "2", 2, 3)]) is Verdict.ILLEGAL


def test_a_read_concurrent_with_a_write_may_see_either_value() -> None:
    for seen in (None, "1"):
        history = [put("x", "1", 0, 10, client=0), get("x", seen, 5, 15, client=1)]
        assert verdict(history) is Verdict.LINEARIZABLE
    history = [put("x", "1", 0, 10, client=0), get("x", "2", 5, 15, client=1)]
    assert verdict(history) is Verdict.ILLEGAL


def test_touching_intervals_are_concurrent() -> None:
    assert verdict([put("x", "1", 0, 5), get("x", None, 5, 6, client=1)]) is Verdict.LINEARIZABLE
    assert verdict([put("x", "1", 0, 5), get("x", None, 6, 7, client=1)]) is Verdict.ILLEGAL


def test_stale_read_after_a_fresh_read_is_illegal() -> None:
    history = [
        put("x", "1", 0, 100, client=0),
        get("x", "1", 10, 20, client=1),
        get("x", None, 30, 40, client=2),
    ]
    assert verdict(history) is Verdict.ILLEGAL


def test_reads_observing_writes_in_two_orders_are_illegal() -> None:
    history = [
        put("x", "a", 0, 100, client=0),
        put("x", "b", 0, 100, client=1),
        get("x", "a", 10, 20, client=2),
        get("x", "b", 30, 40, client=3),
        get("x", "a", 50, 60, client=4),
    ]
    assert verdict(history) is Verdict.ILLEGAL
    history[-1] = get("x", "b", 50, 60, client=4)
    assert verdict(history) is Verdict.LINEARIZABLE


def test_unknown_write_may_or_may_not_take_effect() -> None:
    assert verdict([put("x", "1", 0, None), get("x", "1", 10, 20, 1)]) is Verdict.LINEARIZABLE
    assert verdict([put("x", "1", 0, None), get("x", None, 10, 20, 1)]) is Verdict.LINEARIZABLE
    history = [put("x", "1", 0, None), get("x", None, 5, 8, 1), get("x", "1", 10, 20, 1)]
    assert verdict(history) is Verdict.LINEARIZABLE
    history = [put("x", "1", 0, None), get("x", "1", 5, 8, 1), get("x", None, 10, 20, 1)]
    assert verdict(history) is Verdict.ILLEGAL


def test_unknown_write_can_take_effect_long_after_its_call() -> None:
    history = [put("x", "1", 0, None), put("x", "2", 1, 2, 1), get("x", "1", 10, 11, 2)]
    assert verdict(history) is Verdict.LINEARIZABLE


def test_unknown_write_cannot_take_effect_before_its_call() -> None:
    history = [get("x", "1", 0, 1, 1), put("x", "1", 5, None)]
    assert verdict(history) is Verdict.ILLEGAL


def test_failed_operations_never_took_effect() -> None:
    failed: KvOperation = Operation(0, KvInput(KvOp.PUT, "x", "1"), 0, Outcome.FAIL)
    assert verdict([failed, get("x", "1", 10, 20, 1)]) is Verdict.ILLEGAL
    assert verdict([failed, get("x", None, 10, 20, 1)]) is Verdict.LINEARIZABLE


def test_compare_and_swap() -> None:
    first = cas("x", None, "1", True, call=0, ret=1)
    assert verdict([first, cas("x", None, "2", True, call=2, ret=3)]) is Verdict.ILLEGAL
    assert verdict([first, cas("x", None, "2", False, call=2, ret=3)]) is Verdict.LINEARIZABLE
    both = [cas("x", None, "1", True, call=0, ret=10), cas("x", None, "2", True, call=0, ret=10)]
    assert verdict(both) is Verdict.ILLEGAL


def test_delete() -> None:
    delete = Operation(0, KvInput(KvOp.DELETE, "x"), 2, Outcome.OK, KvOutput(), 3)
    assert verdict([put("x", "1", 0, 1), delete, get("x", None, 4, 5)]) is Verdict.LINEARIZABLE
    assert verdict([put("x", "1", 0, 1), delete, get("x", "1", 4, 5)]) is Verdict.ILLEGAL


def test_keys_are_checked_independently_and_the_failure_is_reported() -> None:
    history = [
        put("a", "1", 0, 1),
        put("b", "1", 0, 1),
        get("a", "1", 2, 3),
        get("b", None, 2, 3),
    ]
    result = check_history(MODEL, history)
    assert result.verdict is Verdict.ILLEGAL
    assert {op.input.key for op in result.partition} == {"b"}
    assert result.longest_prefix == (history[1],)


def test_step_budget_gives_undecided() -> None:
    history = [put("x", str(i), 0, 100, client=i) for i in range(8)]
    history.append(get("x", "9", 200, 201, client=9))
    assert check_history(MODEL, history, max_steps=5).verdict is Verdict.UNDECIDED
    assert check_history(MODEL, history).verdict is Verdict.ILLEGAL


def test_many_concurrent_writes_are_fast_thanks_to_memoisation() -> None:
    history = [put("x", str(i % 3), 0, 100, client=i) for i in range(40)]
    history.append(get("x", "2", 200, 201, client=99))
    result = check_history(MODEL, history)
    assert result.verdict is Verdict.LINEARIZABLE
    assert result.steps < 10_000


def test_operation_validation() -> None:
    with pytest.raises(ValueError, match="needs a return time"):
        Operation(0, KvInput(KvOp.GET, "x"), 0, Outcome.OK, KvOutput())
    with pytest.raises(ValueError, match="before its call"):
        Operation(0, KvInput(KvOp.GET, "x"), 5, Outcome.OK, KvOutput(), 4)
    with pytest.raises(ValueError, match="needs a value"):
        KvInput(KvOp.PUT, "x")


def test_recorder_marks_pending_calls_unknown() -> None:
    recorder: HistoryRecorder[KvInput, KvOutput] = HistoryRecorder()
    a = recorder.invoke(0, KvInput(KvOp.PUT, "x", "1"), 0)
    b = recorder.invoke(1, KvInput(KvOp.PUT, "x", "2"), 1)
    c = recorder.invoke(2, KvInput(KvOp.GET, "x"), 2)
    recorder.ok(a, KvOutput(), 3)
    recorder.ok(c, KvOutput(value="2"), 10)
    history = recorder.history()
    assert [op.outcome for op in history] == [Outcome.OK, Outcome.UNKNOWN, Outcome.OK]
    assert history[1].input.value == "2"
    assert check_history(MODEL, history).verdict is Verdict.LINEARIZABLE
    with pytest.raises(ValueError, match="already completed"):
        recorder.fail(a)
    with pytest.raises(KeyError, match="no operation"):
        recorder.unknown(7)
    recorder.unknown(b)
    assert recorder.history()[1].outcome is Outcome.UNKNOWN


# A brute-force oracle: try every order of every subset of the unknown operations.


def _precedes(a: KvOperation, b: KvOperation) -> bool:
    return a.ret is not None and a.outcome is Outcome.OK and a.ret < b.call


def _brute_force(history: Sequence[KvOperation]) -> bool:
    ops = [op for op in history if op.outcome is not Outcome.FAIL]
    required = [op for op in ops if op.outcome is Outcome.OK]
    optional = [op for op in ops if op.outcome is Outcome.UNKNOWN]
    for n in range(len(optional) + 1):
        for chosen in itertools.combinations(optional, n):
            for order in itertools.permutations(required + list(chosen)):
                if _legal(order):
                    return True
    return False


def _legal(order: Sequence[KvOperation]) -> bool:
    for i, a in enumerate(order):
        if any(_precedes(b, a) for b in order[i + 1 :]):
            return False
    state: dict[str, str | None] = {}
    for op in order:
        new, out = apply_kv(state.get(op.input.key), op.input)
        if op.outcome is Outcome.OK and op.output != out:
            return False
        state[op.input.key] = new
    return True


@st.composite
def small_histories(draw: st.DrawFn) -> list[KvOperation]:
    ops: list[KvOperation] = []
    for client in range(draw(st.integers(0, 5))):
        key = draw(st.sampled_from(["x", "y"]))
        kind = draw(st.sampled_from(list(KvOp)))
        value = draw(st.sampled_from(["1", "2"]))
        expected = draw(st.sampled_from([None, "1", "2"]))
        op_input = KvInput(kind, key, value if kind in (KvOp.PUT, KvOp.CAS) else None, expected)
        call = draw(st.integers(0, 10))
        outcome = draw(st.sampled_from(list(Outcome)))
        if outcome is not Outcome.OK:
            ops.append(Operation(client, op_input, call, outcome))
            continue
        ret = call + draw(st.integers(0, 6))
        output = KvOutput(
            value=draw(st.sampled_from([None, "1", "2"])) if kind is KvOp.GET else None,
            ok=draw(st.booleans()) if kind is KvOp.CAS else True,
        )
        ops.append(Operation(client, op_input, call, outcome, output, ret))
    return ops


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(small_histories())
def test_agrees_with_brute_force(history: list[KvOperation]) -> None:
    assert check_history(MODEL, history).ok == _brute_force(history)
