"""A batch of reports weighs at least what it encodes to, so a full batch stays within one
log entry (`MAX_COMMAND_BYTES`)."""

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from dkron_trio.commands import MAX_COMMAND_BYTES, PutExecutions, encode_command
from dkron_trio.dispatch import wire
from dkron_trio.dispatch.worker import _REPORT_BATCH_BYTES, _REPORT_BATCH_COUNT, _report_weight
from dkron_trio.execution import ExecutionStatus
from tests.store.helpers import execution


@settings(max_examples=200, deadline=None)
@given(
    output=st.text(max_size=2000),
    node=st.text(min_size=1, max_size=64),
    status=st.sampled_from([s for s in ExecutionStatus if s.finished]),
)
def test_the_weight_bounds_the_encoded_report(
    output: str, node: str, status: ExecutionStatus
) -> None:
    report = attrs.evolve(
        execution("a-job-name-of-some-length", 3, status, node=node, output=output),
        id=f"1795405359698021000-{node}",
        fence=2**40,
        exit_code=-(2**31),
    )
    assert len(wire.encode_executions([report])) <= _report_weight(report)


def test_a_full_batch_fits_one_log_entry() -> None:
    report = execution("j" * 100, 1, node="n" * 100, output="\U0001d11e" * 1000)  # 4 bytes each
    batch = [report] * (_REPORT_BATCH_BYTES // _report_weight(report))
    assert len(encode_command(PutExecutions(tuple(batch)))) <= MAX_COMMAND_BYTES


def test_short_reports_fill_a_batch_to_its_count() -> None:
    """One batch is in flight per server: its size bounds a worker's reports a second, and
    the weight of short reports must not bound it below the count."""
    report = execution("bench-000123", 1, node="w1", output="1795417005648919000")
    assert _REPORT_BATCH_BYTES // _report_weight(report) >= _REPORT_BATCH_COUNT
