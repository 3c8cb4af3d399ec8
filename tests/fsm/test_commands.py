"""The command codec: exact round trips, and nothing but CommandError from bad bytes."""

import contextlib
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import attrs
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dkron_trio.commands import (
    CODEC_VERSION,
    MAX_COMMAND_BYTES,
    Command,
    CommandError,
    CommandKind,
    DeleteJob,
    PutExecution,
    SetCursor,
    SetJob,
    decode_command,
    encode_command,
)
from dkron_trio.execution import MissedTick, MissReason
from dkron_trio.store.base import PlanRecord
from tests.store.helpers import NOTIFY, T0, execution, job

from .strategies import commands


@given(commands)
@settings(max_examples=150)
def test_every_command_round_trips(cmd: Command) -> None:
    data = encode_command(cmd)
    assert decode_command(data) == cmd
    assert encode_command(decode_command(data)) == data


def test_every_kind_is_covered_and_tagged() -> None:
    data = encode_command(DeleteJob("a"))
    assert msgpack.unpackb(data) == [CODEC_VERSION, "delete_job", {"name": "a"}]
    assert {k.value for k in CommandKind} == {
        "set_job",
        "delete_job",
        "put_execution",
        "put_executions",
        "delete_executions",
        "record_missed",
        "set_cursor",
        "record_plans",
        "set_member",
        "set_token",
        "delete_token",
    }


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_random_bytes_raise_only_command_error(data: bytes) -> None:
    with contextlib.suppress(CommandError):
        decode_command(data)


@given(commands, st.data())
@settings(max_examples=150)
def test_damaged_commands_raise_only_command_error(cmd: Command, data: st.DataObject) -> None:
    raw = bytearray(encode_command(cmd))
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    try:
        decoded = decode_command(bytes(raw[:cut]))
    except CommandError:
        return
    assert encode_command(decoded) == bytes(raw[:cut])


def _frame(version: object, kind: object, body: object) -> bytes:
    data: bytes = msgpack.packb([version, kind, body])
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_frame(CODEC_VERSION + 1, "delete_job", {"name": "a"}), "unsupported command version"),
        (_frame(True, "delete_job", {"name": "a"}), "unsupported command version"),
        (_frame(CODEC_VERSION, "drop_table", {"name": "a"}), "unknown command kind"),
        (_frame(CODEC_VERSION, 3, {"name": "a"}), "command kind must be a string"),
        (_frame(CODEC_VERSION, "delete_job", ["a"]), "body must be a map"),
        (_frame(CODEC_VERSION, "delete_job", {}), "malformed command"),
        (_frame(CODEC_VERSION, "delete_job", {"name": 5}), "DeleteJob.name"),
        (_frame(CODEC_VERSION, "delete_job", {"name": "a", "x": 1}), "canonical"),
        (msgpack.packb([CODEC_VERSION, "delete_job"]), "[version, kind, body]"),
        (msgpack.packb({"name": "a"}), "[version, kind, body]"),
        (encode_command(DeleteJob("a")) + b"\x00", "malformed command"),
        (b"", "malformed command"),
        (
            _frame(
                CODEC_VERSION, "set_cursor", {"job_name": "a", "t": "2024-01-01T01:00:00+01:00"}
            ),
            "canonical",
        ),
        (_frame(CODEC_VERSION, "set_cursor", {"job_name": "a", "t": None}), "must be set"),
        (_frame(CODEC_VERSION, "set_cursor", {"job_name": "a", "t": 17}), "RFC3339"),
    ],
)
def test_malformed_input_is_named(data: bytes, message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        decode_command(data)


def test_mistyped_record_fields_are_refused() -> None:
    record = job("a").to_json()
    for field, value in [("retries", True), ("retries", 1.0), ("tags", [["k", "v"]])]:
        body = {"job": {**record, field: value}}
        with pytest.raises(CommandError):
            decode_command(_frame(CODEC_VERSION, "set_job", body))
    too_big = {"job": {**record, "retries": 1 << 63}}
    with pytest.raises(CommandError, match="retries"):
        decode_command(_frame(CODEC_VERSION, "set_job", too_big))


def test_oversize_commands_are_refused_both_ways() -> None:
    huge = PutExecution(attrs.evolve(execution("a", 1), output="x" * MAX_COMMAND_BYTES))
    with pytest.raises(CommandError, match="exceeds"):
        encode_command(huge)
    with pytest.raises(CommandError, match="exceeds"):
        decode_command(b"\x00" * (MAX_COMMAND_BYTES + 1))


def test_commands_that_would_not_survive_the_wire_are_refused_on_encode() -> None:
    naive = datetime(2024, 1, 1)
    with pytest.raises(CommandError, match=r"SetCursor\.t"):
        encode_command(SetCursor("a", naive))
    with pytest.raises(CommandError, match="retries"):
        encode_command(SetJob(attrs.evolve(job("a"), retries=True)))
    with pytest.raises(CommandError):
        encode_command(SetJob(attrs.evolve(job("a"), misfire_grace=timedelta(microseconds=5))))


def test_other_timezones_arrive_as_the_same_instant() -> None:
    t = datetime(2024, 6, 1, 12, tzinfo=UTC).astimezone(ZoneInfo("Europe/Berlin"))
    decoded = decode_command(encode_command(SetCursor("a", t)))
    assert isinstance(decoded, SetCursor) and decoded.t == t and decoded.t.tzinfo is UTC


def test_a_plan_holds_only_its_own_job() -> None:
    tick = MissedTick("b", T0, MissReason.OVERLAP, T0)
    with pytest.raises(ValueError, match="MissedTick of job 'b'"):
        PlanRecord("a", T0, [tick], [])
    with pytest.raises(ValueError, match="Execution of job 'b'"):
        PlanRecord("a", T0, [], [execution("b", 1)])
    foreign = {
        "job_name": "a",
        "cursor": "2024-01-01T00:00:00Z",
        "missed": [],
        "started": [execution("b", 1).to_json()],
    }
    with pytest.raises(CommandError, match="of job 'b'"):
        decode_command(_frame(CODEC_VERSION, "record_plans", {"plans": [foreign]}))


def test_a_job_without_notify_targets_encodes_as_before_the_field() -> None:
    record = job("old").to_json()
    del record["notify"]
    written_by_an_older_build = _frame(CODEC_VERSION, "set_job", {"job": record})
    decoded = decode_command(written_by_an_older_build)
    assert decoded == SetJob(job("old"))
    assert encode_command(decoded) == written_by_an_older_build
    with_targets = SetJob(job("new", notify=NOTIFY))
    assert decode_command(encode_command(with_targets)) == with_targets


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"started_at": "2024-01-01T01:00:00+01:00"}, "canonical"),
        ({"finished_at": "2024-01-01 00:00:01Z"}, "canonical"),
        ({"scheduled_at": "2024-01-01T00:00:00"}, "scheduled_at"),
        ({"started_at": "yesterday"}, "malformed"),
        ({"id": ""}, "needs an id"),
        ({"job_name": ""}, "needs an id"),
        ({"status": "done"}, "malformed"),
        ({"attempt": "1"}, "attempt"),
        ({"extra": 1}, "canonical"),
    ],
)
def test_execution_records_are_read_strictly(change: dict[str, object], message: str) -> None:
    record = {**execution("a", 1).to_json(), **change}
    data = _frame(CODEC_VERSION, "put_executions", {"executions": [record]})
    with pytest.raises(CommandError, match=re.escape(message)):
        decode_command(data)


def test_a_missing_execution_field_is_refused() -> None:
    record = execution("a", 1).to_json()
    del record["fence"]
    with pytest.raises(CommandError, match="malformed"):
        decode_command(_frame(CODEC_VERSION, "put_executions", {"executions": [record]}))
