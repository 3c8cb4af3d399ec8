"""Wire format of gossip datagrams: a version byte, then a msgpack array of messages, each an
array whose first item is the message type.

Decoding trusts nothing: any malformed, oversize or unknown input raises `CodecError`, the
only error it raises, so the shell can count and drop it.
"""

from __future__ import annotations

from typing import Any

import msgpack

from dkron_trio.gossip.config import META_MAX_BYTES, UDP_BUFFER_SIZE
from dkron_trio.gossip.messages import (
    Ack,
    Addr,
    Alive,
    Dead,
    KeyOp,
    KeyRequest,
    KeyResponse,
    MemberState,
    Message,
    Nack,
    NodeState,
    Packet,
    Ping,
    PingReq,
    PushPull,
    Suspect,
    Tags,
)

VERSION = 1
"""First byte of every plain datagram."""

MAX_NAME = 256
MAX_HOST = 255
_MAX_INT = (1 << 64) - 1

_PING, _PING_REQ, _ACK, _NACK, _ALIVE, _SUSPECT, _DEAD, _PUSH_PULL = range(1, 9)
_KEY_REQ, _KEY_RESP = 9, 10
MAX_KEYS = 16
"""Most keys a keyring answer may list."""
MAX_ERROR = 512
_KEY_SIZES = (16, 24, 32)


class CodecError(ValueError):
    """A datagram that is not a well-formed gossip packet of this version."""


def tags_size(tags: Tags) -> int:
    """Encoded size of a tag map, the figure the meta limit applies to."""
    return len(msgpack.packb(tags))


def _state_row(s: NodeState) -> list[Any]:
    return [s.node, s.addr[0], s.addr[1], s.incarnation, int(s.state), s.tags]


def _row(msg: Message) -> list[Any]:
    match msg:
        case Ping(seq, target):
            return [_PING, seq, target]
        case PingReq(seq, target, addr, nack):
            return [_PING_REQ, seq, target, addr[0], addr[1], nack]
        case Ack(seq):
            return [_ACK, seq]
        case Nack(seq):
            return [_NACK, seq]
        case Alive(incarnation, node, addr, tags):
            return [_ALIVE, incarnation, node, addr[0], addr[1], tags]
        case Suspect(incarnation, node, sender):
            return [_SUSPECT, incarnation, node, sender]
        case Dead(incarnation, node, sender):
            return [_DEAD, incarnation, node, sender]
        case PushPull(reply, states):
            return [_PUSH_PULL, reply, [_state_row(s) for s in states]]
        case KeyRequest(id_, op, key):
            return [_KEY_REQ, id_, int(op), key]
        case KeyResponse(id_, node, error, keys):
            return [_KEY_RESP, id_, node, error, list(keys)]
    raise TypeError(f"not a gossip message: {msg!r}")


def message_size(msg: Message) -> int:
    """Bytes `msg` adds to a packet's array."""
    return len(msgpack.packb(_row(msg)))


def state_size(state: NodeState) -> int:
    """Bytes one member adds to a push-pull message."""
    return len(msgpack.packb(_state_row(state)))


PACKET_OVERHEAD = 1 + 3
"""Version byte plus the largest array header a datagram-sized packet needs."""

PUSH_PULL_OVERHEAD = 1 + 1 + 1 + 3
"""A push-pull message without its states: array header, type, reply flag, states header."""


def encode_packet(packet: Packet) -> bytes:
    body: bytes = msgpack.packb([_row(m) for m in packet])
    return bytes([VERSION]) + body


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise CodecError(f"{what}: expected an unsigned 64-bit integer")
    return value


def _str(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise CodecError(f"{what}: expected a string of 1..{limit} characters")
    return value


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise CodecError(f"{what}: expected a boolean")
    return value


def _addr(host: object, port: object) -> Addr:
    p = _int(port, "port")
    if p > 65535:
        raise CodecError("port: out of range")
    return (_str(host, "host", MAX_HOST), p)


def _tags(value: object) -> Tags:
    if not isinstance(value, dict):
        raise CodecError("tags: expected a map")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise CodecError("tags: keys and values must be strings")
    if tags_size(value) > META_MAX_BYTES:
        raise CodecError(f"tags: larger than {META_MAX_BYTES} bytes")
    return value


def _key(value: object, *, empty: bool) -> bytes:
    if not isinstance(value, bytes) or not (len(value) in _KEY_SIZES or (empty and not value)):
        raise CodecError("key: expected 16, 24 or 32 bytes")
    return value


def _fields(row: list[Any], n: int, what: str) -> list[Any]:
    if len(row) != n:
        raise CodecError(f"{what}: expected {n - 1} fields, got {len(row) - 1}")
    return row


def _state(row: object) -> NodeState:
    if not isinstance(row, list) or len(row) != 6:
        raise CodecError("push-pull state: expected 6 fields")
    node, host, port, inc, state, tags = row
    s = _int(state, "state")
    if s > max(MemberState):
        raise CodecError("state: unknown member state")
    return NodeState(
        _str(node, "node", MAX_NAME),
        _addr(host, port),
        _int(inc, "incarnation"),
        MemberState(s),
        _tags(tags),
    )


def _message(row: object) -> Message:
    if not isinstance(row, list) or not row:
        raise CodecError("message: expected a non-empty array")
    kind = row[0]
    if isinstance(kind, bool) or not isinstance(kind, int):
        raise CodecError("message: type must be an integer")
    if kind == _PING:
        _, seq, target = _fields(row, 3, "ping")
        return Ping(_int(seq, "seq"), _str(target, "target", MAX_NAME))
    if kind == _PING_REQ:
        _, seq, target, host, port, nack = _fields(row, 6, "ping-req")
        return PingReq(
            _int(seq, "seq"),
            _str(target, "target", MAX_NAME),
            _addr(host, port),
            _bool(nack, "nack"),
        )
    if kind == _ACK:
        _, seq = _fields(row, 2, "ack")
        return Ack(_int(seq, "seq"))
    if kind == _NACK:
        _, seq = _fields(row, 2, "nack")
        return Nack(_int(seq, "seq"))
    if kind == _ALIVE:
        _, inc, node, host, port, tags = _fields(row, 6, "alive")
        return Alive(
            _int(inc, "incarnation"),
            _str(node, "node", MAX_NAME),
            _addr(host, port),
            _tags(tags),
        )
    if kind in (_SUSPECT, _DEAD):
        _, inc, node, sender = _fields(row, 4, "suspect" if kind == _SUSPECT else "dead")
        cls = Suspect if kind == _SUSPECT else Dead
        return cls(
            _int(inc, "incarnation"),
            _str(node, "node", MAX_NAME),
            _str(sender, "sender", MAX_NAME),
        )
    if kind == _PUSH_PULL:
        _, reply, states = _fields(row, 3, "push-pull")
        if not isinstance(states, list):
            raise CodecError("push-pull: expected an array of states")
        return PushPull(_bool(reply, "reply"), tuple(_state(s) for s in states))
    if kind == _KEY_REQ:
        _, id_, op, key = _fields(row, 4, "key request")
        code = _int(op, "op")
        if code > max(KeyOp):
            raise CodecError("op: unknown keyring operation")
        op_ = KeyOp(code)
        return KeyRequest(_int(id_, "id"), op_, _key(key, empty=op_ is KeyOp.LIST))
    if kind == _KEY_RESP:
        _, id_, node, error, keys = _fields(row, 5, "key response")
        if not isinstance(error, str) or len(error) > MAX_ERROR:
            raise CodecError(f"error: expected a string of at most {MAX_ERROR} characters")
        if not isinstance(keys, list) or len(keys) > MAX_KEYS:
            raise CodecError(f"keys: expected an array of at most {MAX_KEYS} keys")
        return KeyResponse(
            _int(id_, "id"),
            _str(node, "node", MAX_NAME),
            error,
            tuple(_key(k, empty=False) for k in keys),
        )
    raise CodecError(f"message: unknown type {kind!r}")


def decode_packet(data: bytes, max_size: int = UDP_BUFFER_SIZE) -> Packet:
    """Parse one plain datagram; raises CodecError on anything else."""
    if len(data) > max_size:
        raise CodecError(f"datagram: larger than {max_size} bytes")
    if not data or data[0] != VERSION:
        raise CodecError("datagram: unknown version")
    try:
        rows = msgpack.unpackb(data[1:], raw=False, strict_map_key=True, use_list=True)
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"datagram: not msgpack ({type(exc).__name__})") from None
    if not isinstance(rows, list) or not rows:
        raise CodecError("datagram: expected a non-empty array of messages")
    return tuple(_message(r) for r in rows)
