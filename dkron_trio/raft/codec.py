"""Versioned msgpack encoding of Raft values for the wire and for storage.

Every frame is a msgpack array `[VERSION, kind, fields...]`. Decoding checks the size
before parsing and validates every field's type and range, so any malformed, truncated,
wrong-version or oversize input raises CodecError and nothing else (DESIGN.md §7).
"""

from __future__ import annotations

import enum
from typing import Any, TypeVar

import msgpack

from dkron_trio.raft.types import (
    MAX_CHUNK_SIZE,
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

VERSION = 1
MAX_FRAME_SIZE = 2 * MAX_CHUNK_SIZE
"""Largest frame decoded; a message's payload is capped at MAX_CHUNK_SIZE by RaftConfig."""
MAX_ENTRIES_PER_MESSAGE = 1 << 20
MAX_MEMBERS = 1 << 12
_MAX_INT = (1 << 63) - 1


class CodecError(ValueError):
    """Input that is not a valid frame of the expected kind and version."""


class FrameKind(enum.Enum):
    MESSAGE = 1
    ENTRY = 2
    CONF_CHANGE = 3
    HARD_STATE = 4
    SNAPSHOT_META = 5


_E = TypeVar("_E", bound=enum.Enum)


def _pack(kind: FrameKind, fields: list[Any]) -> bytes:
    data: bytes = msgpack.packb([VERSION, kind.value, *fields], use_bin_type=True)
    return data


def _unpack(data: bytes, kind: FrameKind, nfields: int, max_size: int) -> list[Any]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise CodecError(f"frame of {len(data)} bytes exceeds limit {max_size}")
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True, timestamp=0)
    except (ValueError, TypeError, OverflowError, msgpack.UnpackException) as exc:
        raise CodecError(f"malformed msgpack: {exc}") from None
    if not isinstance(obj, list) or len(obj) < 2:
        raise CodecError("frame is not a [version, kind, ...] array")
    version, got_kind = obj[0], obj[1]
    if version != VERSION or isinstance(version, bool):
        raise CodecError(f"unsupported frame version {version!r}")
    if got_kind != kind.value or isinstance(got_kind, bool):
        raise CodecError(f"expected {kind.name} frame, got kind {got_kind!r}")
    if len(obj) != nfields + 2:
        raise CodecError(f"{kind.name} frame has {len(obj) - 2} fields, expected {nfields}")
    return obj[2:]


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_INT:
        raise CodecError(f"{name}: expected a non-negative integer, got {value!r}")
    return value


def _bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise CodecError(f"{name}: expected a boolean, got {value!r}")
    return value


def _bytes(value: Any, name: str) -> bytes:
    if not isinstance(value, bytes):
        raise CodecError(f"{name}: expected bytes, got {type(value).__name__}")
    return value


def _list(value: Any, name: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise CodecError(f"{name}: expected an array, got {type(value).__name__}")
    if len(value) > limit:
        raise CodecError(f"{name}: {len(value)} items exceed limit {limit}")
    return value


def _enum(cls: type[_E], value: Any, name: str) -> _E:
    try:
        return cls(_int(value, name))
    except ValueError:
        raise CodecError(f"{name}: unknown value {value!r}") from None


def _fields(value: Any, name: str, n: int) -> list[Any]:
    items = _list(value, name, n)
    if len(items) != n:
        raise CodecError(f"{name}: expected {n} fields, got {len(items)}")
    return items


# -- entries ----------------------------------------------------------------------------


def _entry_fields(e: Entry) -> list[Any]:
    return [e.term, e.index, e.type.value, e.data]


def _entry_from(value: Any, name: str) -> Entry:
    term, index, etype, data = _fields(value, name, 4)
    return Entry(
        _int(term, f"{name}.term"),
        _int(index, f"{name}.index"),
        _enum(EntryType, etype, f"{name}.type"),
        _bytes(data, f"{name}.data"),
    )


def encode_entry(entry: Entry) -> bytes:
    return _pack(FrameKind.ENTRY, _entry_fields(entry))


def decode_entry(data: bytes, *, max_size: int = MAX_FRAME_SIZE) -> Entry:
    return _entry_from(_unpack(data, FrameKind.ENTRY, 4, max_size), "entry")


# -- membership -------------------------------------------------------------------------


def _conf_fields(cs: ConfState) -> list[Any]:
    return [sorted(cs.voters), sorted(cs.learners)]


def _conf_from(value: Any, name: str) -> ConfState:
    voters, learners = _fields(value, name, 2)
    v = [_int(i, f"{name}.voters") for i in _list(voters, f"{name}.voters", MAX_MEMBERS)]
    lr = [_int(i, f"{name}.learners") for i in _list(learners, f"{name}.learners", MAX_MEMBERS)]
    try:
        return ConfState(frozenset(v), frozenset(lr))
    except ValueError as exc:
        raise CodecError(f"{name}: {exc}") from None


def encode_conf_change(change: ConfChange) -> bytes:
    return _pack(FrameKind.CONF_CHANGE, [change.type.value, change.node_id, change.context])


def decode_conf_change(data: bytes, *, max_size: int = MAX_FRAME_SIZE) -> ConfChange:
    ctype, node_id, context = _unpack(data, FrameKind.CONF_CHANGE, 3, max_size)
    nid = _int(node_id, "conf_change.node_id")
    if nid == 0:
        raise CodecError("conf_change.node_id: must be >= 1")
    return ConfChange(
        _enum(ConfChangeType, ctype, "conf_change.type"),
        nid,
        _bytes(context, "conf_change.context"),
    )


# -- durable state ----------------------------------------------------------------------


def encode_hard_state(hs: HardState) -> bytes:
    return _pack(FrameKind.HARD_STATE, [hs.term, hs.vote, hs.commit])


def decode_hard_state(data: bytes, *, max_size: int = MAX_FRAME_SIZE) -> HardState:
    term, vote, commit = _unpack(data, FrameKind.HARD_STATE, 3, max_size)
    return HardState(
        _int(term, "hard_state.term"),
        _int(vote, "hard_state.vote"),
        _int(commit, "hard_state.commit"),
    )


def _meta_fields(meta: SnapshotMeta) -> list[Any]:
    return [meta.index, meta.term, _conf_fields(meta.conf_state)]


def _meta_from(value: Any, name: str) -> SnapshotMeta:
    index, term, conf = _fields(value, name, 3)
    return SnapshotMeta(
        _int(index, f"{name}.index"), _int(term, f"{name}.term"), _conf_from(conf, f"{name}.conf")
    )


def encode_snapshot_meta(meta: SnapshotMeta) -> bytes:
    return _pack(FrameKind.SNAPSHOT_META, _meta_fields(meta))


def decode_snapshot_meta(data: bytes, *, max_size: int = MAX_FRAME_SIZE) -> SnapshotMeta:
    return _meta_from(_unpack(data, FrameKind.SNAPSHOT_META, 3, max_size), "snapshot_meta")


# -- messages ---------------------------------------------------------------------------


def encode_message(msg: Message) -> bytes:
    chunk = msg.snapshot
    return _pack(
        FrameKind.MESSAGE,
        [
            msg.type.value,
            msg.to,
            msg.sender,
            msg.term,
            msg.log_term,
            msg.index,
            msg.commit,
            [_entry_fields(e) for e in msg.entries],
            msg.reject,
            msg.reject_hint,
            msg.context,
            msg.leader_transfer,
            None
            if chunk is None
            else [_meta_fields(chunk.meta), chunk.offset, chunk.data, chunk.done],
        ],
    )


def _chunk_from(value: Any) -> SnapshotChunk | None:
    if value is None:
        return None
    meta, offset, data, done = _fields(value, "snapshot", 4)
    chunk = SnapshotChunk(
        _meta_from(meta, "snapshot.meta"),
        _int(offset, "snapshot.offset"),
        _bytes(data, "snapshot.data"),
        _bool(done, "snapshot.done"),
    )
    if len(chunk.data) > MAX_CHUNK_SIZE:
        raise CodecError(f"snapshot.data: {len(chunk.data)} bytes exceed {MAX_CHUNK_SIZE}")
    return chunk


def decode_message(data: bytes, *, max_size: int = MAX_FRAME_SIZE) -> Message:
    (
        mtype,
        to,
        sender,
        term,
        log_term,
        index,
        commit,
        entries,
        reject,
        reject_hint,
        context,
        leader_transfer,
        snapshot,
    ) = _unpack(data, FrameKind.MESSAGE, 13, max_size)
    msg_index = _int(index, "message.index")
    decoded = tuple(
        _entry_from(e, "message.entries[]")
        for e in _list(entries, "message.entries", MAX_ENTRIES_PER_MESSAGE)
    )
    for i, entry in enumerate(decoded):
        if entry.index != msg_index + 1 + i:
            raise CodecError(
                f"message.entries: entry {entry.index} out of sequence after {msg_index + i}"
            )
    return Message(
        type=_enum(MessageType, mtype, "message.type"),
        to=_int(to, "message.to"),
        sender=_int(sender, "message.sender"),
        term=_int(term, "message.term"),
        log_term=_int(log_term, "message.log_term"),
        index=msg_index,
        commit=_int(commit, "message.commit"),
        entries=decoded,
        reject=_bool(reject, "message.reject"),
        reject_hint=_int(reject_hint, "message.reject_hint"),
        context=_bytes(context, "message.context"),
        leader_transfer=_bool(leader_transfer, "message.leader_transfer"),
        snapshot=_chunk_from(snapshot),
    )
