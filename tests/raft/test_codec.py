"""The codec round-trips every value and turns any bad input into CodecError, only."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dkron_trio.raft import codec
from dkron_trio.raft.codec import CodecError
from dkron_trio.raft.types import (
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Message,
    MessageType,
    SnapshotChunk,
    SnapshotMeta,
)

ints = st.integers(min_value=0, max_value=(1 << 63) - 1)
small = st.integers(min_value=0, max_value=1000)
node_ids = st.integers(min_value=1, max_value=50)


@st.composite
def conf_states(draw: st.DrawFn) -> ConfState:
    voters = draw(st.frozensets(node_ids, max_size=5))
    learners = draw(st.frozensets(node_ids, max_size=3)) - voters
    return ConfState(voters, learners)


_chunks = st.none() | st.builds(
    SnapshotChunk,
    st.builds(SnapshotMeta, small, small, conf_states()),
    small,
    st.binary(max_size=30),
    st.booleans(),
)
_entry_bodies = st.lists(
    st.tuples(small, st.sampled_from(EntryType), st.binary(max_size=20)), max_size=4
)


@st.composite
def messages(draw: st.DrawFn) -> Message:
    index = draw(small)
    entries = tuple(
        Entry(term, index + 1 + i, etype, data)
        for i, (term, etype, data) in enumerate(draw(_entry_bodies))
    )
    return Message(
        type=draw(st.sampled_from(MessageType)),
        to=draw(node_ids),
        sender=draw(node_ids),
        term=draw(ints),
        log_term=draw(small),
        index=index,
        commit=draw(small),
        entries=entries,
        reject=draw(st.booleans()),
        reject_hint=draw(small),
        context=draw(st.binary(max_size=10)),
        leader_transfer=draw(st.booleans()),
        snapshot=draw(_chunks),
    )


@given(messages())
def test_message_round_trips(m: Message) -> None:
    assert codec.decode_message(codec.encode_message(m)) == m


@given(st.builds(Entry, ints, ints, st.sampled_from(EntryType), st.binary(max_size=50)))
def test_entry_round_trips(e: Entry) -> None:
    assert codec.decode_entry(codec.encode_entry(e)) == e


@given(st.builds(ConfChange, st.sampled_from(ConfChangeType), node_ids, st.binary(max_size=20)))
def test_conf_change_round_trips(cc: ConfChange) -> None:
    assert codec.decode_conf_change(codec.encode_conf_change(cc)) == cc


@given(st.builds(HardState, ints, ints, ints), st.builds(SnapshotMeta, ints, ints, conf_states()))
def test_durable_state_round_trips(hs: HardState, meta: SnapshotMeta) -> None:
    assert codec.decode_hard_state(codec.encode_hard_state(hs)) == hs
    assert codec.decode_snapshot_meta(codec.encode_snapshot_meta(meta)) == meta


DECODERS = [
    codec.decode_message,
    codec.decode_entry,
    codec.decode_conf_change,
    codec.decode_hard_state,
    codec.decode_snapshot_meta,
]


def _decodes_or_codec_error(data: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(CodecError):
            decode(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_codec_error(data: bytes) -> None:
    _decodes_or_codec_error(data)


@settings(max_examples=200, deadline=None)
@given(messages(), st.data())
def test_mutated_frames_decode_or_raise_codec_error(m: Message, data: st.DataObject) -> None:
    frame = bytearray(codec.encode_message(m))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(min_value=0, max_value=max(len(frame) - 1, 0)))
        if op == "flip" and frame:
            frame[pos] ^= data.draw(st.integers(min_value=1, max_value=255))
        elif op == "cut":
            del frame[pos:]
        else:
            frame[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    _decodes_or_codec_error(bytes(frame))


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
    | st.floats()
    | st.text(max_size=5)
    | st.binary(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_values, max_size=16), st.sampled_from(codec.FrameKind))
def test_well_formed_msgpack_with_wrong_shapes_raises_codec_error(
    fields: list[object], kind: codec.FrameKind
) -> None:
    _decodes_or_codec_error(msgpack.packb([codec.VERSION, kind.value, *fields]))


def test_wrong_version_is_rejected() -> None:
    frame = msgpack.packb([2, codec.FrameKind.ENTRY.value, 1, 1, 0, b""])
    with pytest.raises(CodecError, match="version"):
        codec.decode_entry(frame)


def test_oversize_frame_is_rejected_before_parsing() -> None:
    frame = codec.encode_entry(Entry(1, 1, data=b"x" * 100))
    with pytest.raises(CodecError, match="exceeds limit"):
        codec.decode_entry(frame, max_size=50)


def test_out_of_sequence_entries_are_rejected() -> None:
    m = Message(MessageType.APPEND, 2, 1, 1, index=5, entries=(Entry(1, 7),))
    with pytest.raises(CodecError, match="out of sequence"):
        codec.decode_message(codec.encode_message(m))


def test_invalid_membership_is_rejected() -> None:
    frame = msgpack.packb([codec.VERSION, codec.FrameKind.SNAPSHOT_META.value, 1, 1, [[1], [1]]])
    with pytest.raises(CodecError, match="both voter and learner"):
        codec.decode_snapshot_meta(frame)


def test_non_bytes_input_is_rejected() -> None:
    with pytest.raises(CodecError):
        codec.decode_message("text")  # type: ignore[arg-type]
