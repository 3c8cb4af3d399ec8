"""The frame codec: exact reassembly under any chunking, and only FrameError on bad input."""

from __future__ import annotations

import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dkron_trio.rpc.framing import (
    MAX_CALL_ID,
    VERSION,
    Frame,
    FrameDecoder,
    FrameError,
    FrameErrorReason,
    FrameType,
    encode_frame,
)

LIMIT = 1 << 16

frames_st = st.builds(
    Frame,
    st.sampled_from(FrameType),
    st.text(max_size=64),
    st.integers(min_value=0, max_value=MAX_CALL_ID),
    st.binary(max_size=2048),
)


def _decode_all(data: bytes, cuts: list[int]) -> list[Frame]:
    decoder = FrameDecoder(LIMIT)
    out: list[Frame] = []
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        decoder.feed(data[start:cut])
        out.extend(decoder.frames())
        start = cut
    assert decoder.buffered == 0
    return out


def _payload(obj: object) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(packed)) + packed


@settings(max_examples=300, deadline=None)
@given(st.lists(frames_st, max_size=8), st.data())
def test_any_chunking_reassembles_exactly(frames: list[Frame], data: st.DataObject) -> None:
    wire = b"".join(encode_frame(f, LIMIT) for f in frames)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(wire)), max_size=20))
    assert _decode_all(wire, cuts) == frames


def test_byte_at_a_time() -> None:
    frames = [Frame(FrameType.REQUEST, "raft", 7, b"x" * 300), Frame(FrameType.ONEWAY, "", 0, b"")]
    wire = b"".join(encode_frame(f, LIMIT) for f in frames)
    assert _decode_all(wire, list(range(len(wire)))) == frames


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512), st.data())
def test_random_bytes_raise_only_frame_error(garbage: bytes, data: st.DataObject) -> None:
    decoder = FrameDecoder(256)
    cuts = data.draw(st.lists(st.integers(min_value=0, max_value=len(garbage)), max_size=5))
    start = 0
    try:
        for cut in [*sorted(cuts), len(garbage)]:
            decoder.feed(garbage[start:cut])
            for frame in decoder.frames():
                assert isinstance(frame, Frame)
            start = cut
    except FrameError as exc:
        assert isinstance(exc.reason, FrameErrorReason)
        with pytest.raises(FrameError):
            list(decoder.frames())


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
        | st.binary()
        | st.text(),
        lambda inner: st.lists(inner, max_size=6),
        max_leaves=12,
    )
)
def test_any_msgpack_value_is_a_frame_or_frame_error(value: object) -> None:
    decoder = FrameDecoder(LIMIT)
    decoder.feed(_payload(value))
    try:
        assert all(isinstance(f, Frame) for f in decoder.frames())
    except FrameError as exc:
        assert exc.reason is FrameErrorReason.MALFORMED


def test_oversize_is_rejected_from_the_length_prefix_alone() -> None:
    decoder = FrameDecoder(100)
    decoder.feed(struct.pack(">I", 101))
    with pytest.raises(FrameError) as info:
        list(decoder.frames())
    assert info.value.reason is FrameErrorReason.OVERSIZE
    decoder.feed(b"more")
    with pytest.raises(FrameError):
        list(decoder.frames())


def test_frame_at_the_limit_is_accepted() -> None:
    frame = Frame(FrameType.ONEWAY, "k", 0, b"")
    size = len(encode_frame(frame, LIMIT)) - 4
    body = b"a" * (1000 - size - 2)
    wire = encode_frame(Frame(FrameType.ONEWAY, "k", 0, body), 1000)
    assert len(wire) - 4 <= 1000
    decoder = FrameDecoder(len(wire) - 4)
    decoder.feed(wire)
    assert [f.body for f in decoder.frames()] == [body]


def test_encode_refuses_oversize_and_bad_fields() -> None:
    with pytest.raises(FrameError) as info:
        encode_frame(Frame(FrameType.ONEWAY, "k", 0, b"x" * 200), 100)
    assert info.value.reason is FrameErrorReason.OVERSIZE
    with pytest.raises(FrameError, match="kind"):
        encode_frame(Frame(FrameType.ONEWAY, "k" * 65, 0, b""), LIMIT)
    with pytest.raises(FrameError, match="call_id"):
        encode_frame(Frame(FrameType.REQUEST, "k", -1, b""), LIMIT)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ([VERSION + 1, 1, "k", 1, b""], "version"),
        ([True, 1, "k", 1, b""], "version"),
        ([VERSION, 9, "k", 1, b""], "type"),
        ([VERSION, 1, b"k", 1, b""], "kind"),
        ([VERSION, 1, "k" * 65, 1, b""], "kind"),
        ([VERSION, 1, "k", -1, b""], "call_id"),
        ([VERSION, 1, "k", 1 << 63, b""], "call_id"),
        ([VERSION, 1, "k", 1, "text"], "body"),
        ([VERSION, 1, "k", 1], "array"),
        ({"v": 1}, "array"),
    ],
)
def test_malformed_payloads(payload: object, match: str) -> None:
    decoder = FrameDecoder(LIMIT)
    decoder.feed(_payload(payload))
    with pytest.raises(FrameError, match=match) as info:
        list(decoder.frames())
    assert info.value.reason is FrameErrorReason.MALFORMED


def test_empty_and_trailing_bytes_are_malformed() -> None:
    for wire in (struct.pack(">I", 0), struct.pack(">I", 2) + b"\x90\x90"):
        decoder = FrameDecoder(LIMIT)
        decoder.feed(wire)
        with pytest.raises(FrameError):
            list(decoder.frames())


def test_good_frames_before_a_bad_one_are_returned() -> None:
    good = encode_frame(Frame(FrameType.ONEWAY, "k", 0, b"1"), LIMIT)
    decoder = FrameDecoder(LIMIT)
    decoder.feed(good + struct.pack(">I", 1) + b"\xc1")
    frames = decoder.frames()
    assert next(frames).body == b"1"
    with pytest.raises(FrameError):
        next(frames)
