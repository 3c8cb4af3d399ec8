"""The datagram codec: round trips, and nothing but CodecError out of any input."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dkron_trio.gossip.codec import VERSION, CodecError, decode_packet, encode_packet
from dkron_trio.gossip.messages import (
    Ack,
    Alive,
    Dead,
    MemberState,
    Message,
    Nack,
    NodeState,
    Ping,
    PingReq,
    PushPull,
    Suspect,
)

ADDR = ("10.0.0.1", 8946)
EVERY_KIND: list[Message] = [
    Ping(1, "a"),
    PingReq(2, "b", ADDR, True),
    Ack(3),
    Nack(4),
    Alive(5, "c", ADDR, {"role": "server", "dc": "east"}),
    Suspect(6, "d", "e"),
    Dead(7, "f", "f"),
    PushPull(True, (NodeState("g", ADDR, 8, MemberState.LEFT, {"x": "y"}),)),
]

names = st.text(min_size=1, max_size=20)
seqs = st.integers(min_value=0, max_value=2**64 - 1)
addrs = st.tuples(names, st.integers(min_value=0, max_value=65535))
tags = st.dictionaries(st.text(max_size=8), st.text(max_size=16), max_size=5)
messages = st.one_of(
    st.builds(Ping, seqs, names),
    st.builds(PingReq, seqs, names, addrs, st.booleans()),
    st.builds(Ack, seqs),
    st.builds(Nack, seqs),
    st.builds(Alive, seqs, names, addrs, tags),
    st.builds(Suspect, seqs, names, names),
    st.builds(Dead, seqs, names, names),
    st.builds(
        PushPull,
        st.booleans(),
        st.lists(
            st.builds(NodeState, names, addrs, seqs, st.sampled_from(MemberState), tags),
            max_size=3,
        ).map(tuple),
    ),
)


def test_every_kind_round_trips() -> None:
    packet = tuple(EVERY_KIND)
    assert decode_packet(encode_packet(packet)) == packet


@given(st.lists(messages, min_size=1, max_size=4).map(tuple))
def test_random_packets_round_trip(packet: tuple[Message, ...]) -> None:
    data = encode_packet(packet)
    if len(data) <= 1400:
        assert decode_packet(data) == packet


@settings(max_examples=300)
@given(st.binary(max_size=1500))
def test_random_bytes_decode_or_raise_codec_error(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_packet(data)


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_random_bytes_after_the_version_byte(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_packet(bytes([VERSION]) + data)


def _raw(obj: object) -> bytes:
    body: bytes = msgpack.packb(obj)
    return bytes([VERSION]) + body


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "version"),
        (b"\x07" + msgpack.packb([[3, 1]]), "version"),
        (_raw([]), "non-empty"),
        (_raw({"a": 1}), "array of messages"),
        (_raw([[99, 1]]), "unknown type"),
        (_raw([[True, 1]]), "integer"),
        (_raw([[3]]), "expected 1 fields"),
        (_raw([[3, -1]]), "unsigned"),
        (_raw([[3, 1.5]]), "unsigned"),
        (_raw([[1, 1, ""]]), "target"),
        (_raw([[2, 1, "t", "h", 70000, True]]), "port"),
        (_raw([[5, 1, "n", "h", 1, {"k": 1}]]), "tags"),
        (_raw([[5, 1, "n", "h", 1, {"k": "v" * 600}]]), "512"),
        (_raw([[8, True, [["n", "h", 1, 1, 9, {}]]]]), "member state"),
        (_raw([[2, 1, "t", "h", 1, 1]]), "boolean"),
        (bytes([VERSION]) + b"\xc1", "not msgpack"),
        (bytes([VERSION]) + b"\x91", "not msgpack"),
        (bytes([VERSION]) + b"\x90" * 1400, "larger than"),
    ],
)
def test_malformed_input_is_named(data: bytes, problem: str) -> None:
    with pytest.raises(CodecError, match=problem):
        decode_packet(data)
