"""Dispatch RPC bodies: every value round-trips; anything else is a DispatchWireError."""

import contextlib

from hypothesis import given
from hypothesis import strategies as st

from dkron_trio.dispatch import wire
from dkron_trio.execution import ExecutionStatus
from tests.store.helpers import execution, job


def test_bodies_round_trip() -> None:
    ex = execution("a", 1, ExecutionStatus.RUNNING)
    order = wire.Order(7, job("a"), ex, "127.0.0.1:6868")
    assert wire.decode_orders(wire.encode_orders([order, order])) == [order, order]
    answers = wire.decode_answers(wire.encode_answers([None, wire.OrderRefused("stale")]))
    assert answers[0] is None
    assert isinstance(answers[1], wire.OrderRefused)
    assert str(answers[1]) == "stale"
    assert wire.decode_executions(wire.encode_executions([ex, ex])) == [ex, ex]
    assert wire.decode_execution(wire.encode_execution(ex)) == ex
    assert wire.decode_status(wire.encode_status(None)) is None
    assert wire.decode_statuses(wire.encode_statuses([ex, None])) == [ex, None]
    assert wire.decode_ids(wire.encode_ids(["x", "y"])) == ["x", "y"]
    assert wire.decode_output(wire.encode_output("x", b"\x00out")) == ("x", b"\x00out")
    assert wire.decode_flag(b"\xc3") is True


@given(st.binary(max_size=300))
def test_random_bytes_decode_or_raise_the_one_error(data: bytes) -> None:
    for decode in (
        wire.decode_orders,
        wire.decode_answers,
        wire.decode_executions,
        wire.decode_execution,
        wire.decode_status,
        wire.decode_statuses,
        wire.decode_ids,
        wire.decode_output,
        wire.decode_flag,
    ):
        with contextlib.suppress(wire.DispatchWireError):
            decode(data)
