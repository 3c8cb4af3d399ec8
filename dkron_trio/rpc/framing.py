"""The RPC frame codec, sans-IO: bytes in, frames out.

A frame is a 4-byte big-endian payload length, then a msgpack payload
`[VERSION, type, kind, call_id, body]`: `type` a FrameType, `kind` the name of the handler
(empty in replies), `call_id` matching a reply to its request (0 for one-way frames) and
`body` opaque bytes for the handler. The decoder rejects a length above its limit as soon
as the prefix arrives, without buffering the body, and turns anything malformed into
FrameError; after an error it stays failed, because a stream out of sync cannot be trusted.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from typing import Any

import attrs
import msgpack

VERSION = 1
HEADER_SIZE = 4
MAX_KIND_LENGTH = 64
MAX_CALL_ID = (1 << 63) - 1
_HEADER = struct.Struct(">I")


class FrameType(enum.IntEnum):
    REQUEST = 1
    RESPONSE = 2
    ERROR = 3
    ONEWAY = 4


class FrameErrorReason(enum.Enum):
    OVERSIZE = "oversize"
    MALFORMED = "malformed"


class FrameError(ValueError):
    """A frame too large or malformed; `reason` tells which, for counting."""

    def __init__(self, reason: FrameErrorReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@attrs.frozen
class Frame:
    type: FrameType
    kind: str
    call_id: int
    body: bytes


def encode_frame(frame: Frame, max_frame_size: int) -> bytes:
    """The frame's bytes on the wire; FrameError(OVERSIZE) if the payload exceeds the limit."""
    if len(frame.kind) > MAX_KIND_LENGTH:
        raise FrameError(FrameErrorReason.MALFORMED, f"kind longer than {MAX_KIND_LENGTH}")
    if not 0 <= frame.call_id <= MAX_CALL_ID:
        raise FrameError(FrameErrorReason.MALFORMED, f"call_id {frame.call_id} out of range")
    payload: bytes = msgpack.packb(
        [VERSION, int(frame.type), frame.kind, frame.call_id, frame.body], use_bin_type=True
    )
    if len(payload) > max_frame_size:
        raise FrameError(
            FrameErrorReason.OVERSIZE,
            f"frame of {len(payload)} bytes exceeds limit {max_frame_size}",
        )
    return _HEADER.pack(len(payload)) + payload


def decode_payload(payload: bytes | memoryview) -> Frame:
    """One payload (without its length prefix) as a Frame, or FrameError(MALFORMED)."""
    try:
        obj = msgpack.unpackb(payload, raw=False, use_list=True, strict_map_key=True)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise _malformed(f"bad msgpack: {exc}") from None
    if not isinstance(obj, list) or len(obj) != 5:
        raise _malformed("payload is not a [version, type, kind, call_id, body] array")
    version, type_, kind, call_id, body = obj
    if not _is_int(version) or version != VERSION:
        raise _malformed(f"unsupported frame version {version!r}")
    if not _is_int(type_) or type_ not in _TYPES:
        raise _malformed(f"unknown frame type {type_!r}")
    if not isinstance(kind, str) or len(kind) > MAX_KIND_LENGTH:
        raise _malformed("kind is not a short string")
    if not _is_int(call_id) or not 0 <= call_id <= MAX_CALL_ID:
        raise _malformed(f"call_id {call_id!r} is not a non-negative 63-bit integer")
    if not isinstance(body, bytes):
        raise _malformed("body is not bytes")
    return Frame(_TYPES[type_], kind, call_id, body)


_TYPES = {t.value: t for t in FrameType}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _malformed(message: str) -> FrameError:
    return FrameError(FrameErrorReason.MALFORMED, message)


@attrs.define
class FrameDecoder:
    """Reassembles frames from a byte stream cut anywhere.

    `feed` appends received bytes; `frames` yields every complete frame buffered so far and
    raises FrameError at the first bad one (and on every later call).
    """

    _max_frame_size: int
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)
    _pos: int = attrs.field(default=0, init=False)
    _error: FrameError | None = attrs.field(default=None, init=False)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buffer) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._pos:
            del self._buffer[: self._pos]
            self._pos = 0
        self._buffer += data

    def frames(self) -> Iterator[Frame]:
        if self._error is not None:
            raise self._error
        buf = self._buffer
        while len(buf) - self._pos >= HEADER_SIZE:
            (length,) = _HEADER.unpack_from(buf, self._pos)
            if length > self._max_frame_size:
                self._error = FrameError(
                    FrameErrorReason.OVERSIZE,
                    f"frame of {length} bytes exceeds limit {self._max_frame_size}",
                )
                raise self._error
            start = self._pos + HEADER_SIZE
            if len(buf) - start < length:
                return
            try:
                with memoryview(buf) as view:
                    frame = decode_payload(view[start : start + length])
            except FrameError as exc:
                self._error = exc
                raise
            self._pos = start + length
            yield frame
