"""The fuzz targets: one decoder (or family of decoders) each, with the invariant it must keep.

Every target takes raw bytes from the network's point of view and feeds them to a decoder.
The invariant is always the same shape (DESIGN.md §7): the input decodes, or the decoder
raises its one error type; anything else (another exception, a hang, a crash) is a finding.
Where a decoder has an encoder, a decoded value must also survive a re-encode and decode
unchanged, so a value the decoder lets through is one the rest of the code can send on.

Targets whose decoders share one error take a selector byte first (`data[0] % n` picks the
decoder), so one corpus covers them all. Seeds are valid encodings of every kind, so
mutations reach the deep checks and not only the msgpack parser.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import attrs

from dkron_trio.cluster import wire
from dkron_trio.commands import (
    CommandError,
    DeleteJob,
    SetCursor,
    SetJob,
    SetMember,
    decode_command,
    encode_command,
)
from dkron_trio.gossip.codec import CodecError as GossipCodecError
from dkron_trio.gossip.codec import decode_packet, encode_packet
from dkron_trio.gossip.messages import (
    Ack,
    Alive,
    Dead,
    KeyOp,
    KeyRequest,
    KeyResponse,
    MemberState,
    Nack,
    NodeState,
    Packet,
    Ping,
    PingReq,
    PushPull,
    Suspect,
)
from dkron_trio.job import Job, ValidationError
from dkron_trio.raft import codec as raft_codec
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
from dkron_trio.rpc.framing import Frame, FrameDecoder, FrameError, FrameType, encode_frame
from dkron_trio.schedule import ScheduleError, parse_schedule
from dkron_trio.store.base import JobHasChildren, JobNotFound, RaftMember


class InvariantBroken(AssertionError):
    """A decoder let through a value that does not survive its own encoder."""


@attrs.frozen
class Target:
    name: str
    invariant: str
    one_input: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]


def _select(data: bytes, n: int) -> tuple[int, bytes]:
    if not data:
        return 0, b""
    return data[0] % n, data[1:]


def _check(same: bool, what: str) -> None:
    if not same:
        raise InvariantBroken(what)


# -- Raft codec ---------------------------------------------------------------------------

_META = SnapshotMeta(40, 3, ConfState({1, 2, 3}, {4}))


def _raft_seeds() -> list[bytes]:
    entries = (Entry(3, 11, EntryType.NORMAL, b"cmd"), Entry(3, 12, EntryType.CONF_CHANGE, b"x"))
    values: list[bytes] = [
        raft_codec.encode_message(
            Message(MessageType.APPEND, 2, 1, 3, 2, 10, 9, entries, context=b"ctx")
        ),
        raft_codec.encode_message(
            Message(MessageType.APPEND_RESPONSE, 1, 2, 3, 2, 12, reject=True, reject_hint=7)
        ),
        raft_codec.encode_message(
            Message(MessageType.SNAPSHOT, 2, 1, 3, snapshot=SnapshotChunk(_META, 0, b"db", True))
        ),
        raft_codec.encode_message(Message(MessageType.VOTE, 2, 1, 4, leader_transfer=True)),
    ]
    seeds = [bytes([0]) + v for v in values]
    seeds.append(bytes([1]) + raft_codec.encode_entry(entries[0]))
    seeds.append(
        bytes([2])
        + raft_codec.encode_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, 4, b"10.0.0.4"))
    )
    seeds.append(bytes([3]) + raft_codec.encode_hard_state(HardState(3, 1, 9)))
    seeds.append(bytes([4]) + raft_codec.encode_snapshot_meta(_META))
    return seeds


def _raft_one(data: bytes) -> None:
    which, body = _select(data, 5)
    try:
        if which == 0:
            msg = raft_codec.decode_message(body)
            _check(raft_codec.decode_message(raft_codec.encode_message(msg)) == msg, "message")
        elif which == 1:
            entry = raft_codec.decode_entry(body)
            _check(raft_codec.decode_entry(raft_codec.encode_entry(entry)) == entry, "entry")
        elif which == 2:
            change = raft_codec.decode_conf_change(body)
            again = raft_codec.decode_conf_change(raft_codec.encode_conf_change(change))
            _check(again == change, "conf change")
        elif which == 3:
            hs = raft_codec.decode_hard_state(body)
            _check(raft_codec.decode_hard_state(raft_codec.encode_hard_state(hs)) == hs, "hs")
        else:
            meta = raft_codec.decode_snapshot_meta(body)
            again_meta = raft_codec.decode_snapshot_meta(raft_codec.encode_snapshot_meta(meta))
            _check(again_meta == meta, "snapshot meta")
    except raft_codec.CodecError:
        pass


# -- RPC frames ---------------------------------------------------------------------------

_FRAME_LIMIT = 4096


def _rpc_seeds() -> list[bytes]:
    frames = [
        Frame(FrameType.REQUEST, "apply", 7, b"\x93\x01\x02\x03"),
        Frame(FrameType.RESPONSE, "", 7, b"ok"),
        Frame(FrameType.ERROR, "", 9, b"boom"),
        Frame(FrameType.ONEWAY, "raft", 0, bytes(100)),
    ]
    wire_bytes = [encode_frame(f, _FRAME_LIMIT) for f in frames]
    return [bytes([3]) + b"".join(wire_bytes), bytes([1]) + wire_bytes[0], bytes([0])]


def _rpc_one(data: bytes) -> None:
    """The first byte sets the chunk size the stream is cut into, so reassembly across any
    split is exercised; every frame that comes out must re-encode to an equal frame."""
    step, stream = _select(data, 256)
    step = step + 1
    decoder = FrameDecoder(_FRAME_LIMIT)
    failed = False
    for start in range(0, len(stream), step):
        decoder.feed(stream[start : start + step])
        try:
            for frame in decoder.frames():
                again = FrameDecoder(_FRAME_LIMIT)
                again.feed(encode_frame(frame, _FRAME_LIMIT))
                _check(list(again.frames()) == [frame], "frame re-encode")
        except FrameError:
            failed = True
            break
    if failed:
        try:
            list(decoder.frames())
        except FrameError:
            return
        raise InvariantBroken("a failed FrameDecoder yielded frames again")


# -- gossip datagrams ---------------------------------------------------------------------

_ADDR = ("10.1.2.3", 8946)
GOSSIP_CORPUS: list[Packet] = [
    (Ping(1, "node-a"), Alive(3, "node-b", _ADDR, {"role": "agent", "dc": "dc1"})),
    (PingReq(9, "node-c", _ADDR, True), Suspect(2, "node-d", "node-a")),
    (Ack(12), Dead(4, "node-e", "node-e"), Nack(5)),
    (
        PushPull(
            True,
            tuple(
                NodeState(f"n{i}", _ADDR, i, MemberState(i % 4), {"k": "v" * i}) for i in range(8)
            ),
        ),
    ),
    (KeyRequest(3, KeyOp.LIST, b""), KeyRequest(4, KeyOp.INSTALL, bytes(range(16)))),
    (KeyRequest(5, KeyOp.USE, bytes(32)), KeyRequest(6, KeyOp.REMOVE, bytes(24))),
    (KeyResponse(5, "node-a", "", (bytes(16), bytes(range(32)))),),
    (KeyResponse(6, "node-b", "remove: key is not installed", ()),),
]


def _gossip_one(data: bytes) -> None:
    try:
        packet = decode_packet(data)
    except GossipCodecError:
        return
    _check(decode_packet(encode_packet(packet)) == packet, "gossip packet re-encode")


# -- cluster RPC bodies and replicated commands ---------------------------------------------

_NOW = datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
_JOB = Job.from_json(
    {
        "name": "backup",
        "schedule": "@every 1m",
        "executor": "shell",
        "executor_config": {"command": "echo hi"},
    },
    now=_NOW,
)
_MEMBERS = (RaftMember(1, "s1", "10.0.0.1:6868"), RaftMember(2, "s2", "10.0.0.2:6868"))


def _wire_seeds() -> list[bytes]:
    replies: list[object] = [
        None,
        3,
        _JOB,
        ValidationError("schedule", "bad"),
        JobNotFound("x"),
        JobHasChildren("a", ("b", "c")),
        CommandError("no"),
    ]
    seeds = [bytes([0]) + wire.encode_reply(r, 12) for r in replies]
    seeds.append(bytes([1]) + wire.encode_member(_MEMBERS[0]))
    seeds.append(bytes([2]) + wire.encode_hello(wire.Hello(_MEMBERS, 3, False)))
    seeds.append(
        bytes([3]) + wire.encode_peers([wire.Peer(m, True, m.node_id == 1) for m in _MEMBERS])
    )
    seeds.append(bytes([4]) + wire.encode_peer_ref("s2"))
    return seeds


def _same_result(a: object, b: object) -> bool:
    if isinstance(a, Exception):
        return type(a) is type(b) and a.args == getattr(b, "args", None)
    return a == b


def _wire_one(data: bytes) -> None:
    which, body = _select(data, 5)
    try:
        if which == 0:
            result, applied = wire.decode_reply(body)
            again, applied_again = wire.decode_reply(wire.encode_reply(result, applied))
            _check(_same_result(result, again) and applied == applied_again, "reply")
        elif which == 1:
            member = wire.decode_member(body)
            _check(wire.decode_member(wire.encode_member(member)) == member, "member")
        elif which == 2:
            hello = wire.decode_hello(body)
            _check(wire.decode_hello(wire.encode_hello(hello)) == hello, "hello")
        elif which == 3:
            peers = wire.decode_peers(body)
            _check(wire.decode_peers(wire.encode_peers(peers)) == peers, "peers")
        else:
            ref = wire.decode_peer_ref(body)
            _check(wire.decode_peer_ref(wire.encode_peer_ref(ref)) == ref, "peer ref")
    except wire.WireError:
        pass


def _command_seeds() -> list[bytes]:
    return [
        encode_command(SetJob(_JOB)),
        encode_command(DeleteJob("backup")),
        encode_command(SetCursor("backup", _NOW)),
        encode_command(SetMember(2, "s2", "10.0.0.2:6868")),
    ]


def _command_one(data: bytes) -> None:
    try:
        cmd = decode_command(data)
    except CommandError:
        return
    _check(decode_command(encode_command(cmd)) == cmd, "command re-encode")


# -- schedules ----------------------------------------------------------------------------

_SCHEDULE_SEEDS = [
    "0 30 2 * * *",
    "*/15 * * * *",
    "0 0 0 L * ?",
    "0 0 9-17/2 * JAN-MAR mon-fri",
    "0 ~ ~ * * *",
    "@every 1h30m",
    "@every 1099999999999999999999999999999999999999999999999h",  # was OverflowError
    "@at 2025-12-31T23:59:00+01:00",
    "@daily",
    "@manually",
    "TZ=Europe/Berlin 0 30 2 * * *",
    "CRON_TZ=Australia/Lord_Howe 0 0 2 * * *",
]
_PROBES = (
    datetime(2025, 3, 30, 0, 59, 59, tzinfo=UTC),
    datetime(2025, 10, 26, 0, 30, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
)


def _schedule_seeds() -> list[bytes]:
    zones = ["", "Europe/Berlin", "America/New_York"]
    return [
        f"{spec}\x00{zones[i % 3]}\x00job-{i}".encode() for i, spec in enumerate(_SCHEDULE_SEEDS)
    ]


def _schedule_one(data: bytes) -> None:
    """Input: `spec NUL timezone NUL job_name` (UTF-8, invalid bytes replaced). A schedule
    that parses must answer next_after with None or an aware time strictly later."""
    spec, _, rest = data.decode("utf-8", "replace").partition("\x00")
    timezone, _, job_name = rest.partition("\x00")
    try:
        schedule = parse_schedule(spec, timezone=timezone, job_name=job_name, anchor=_NOW)
    except ScheduleError:
        return
    for probe in _PROBES:
        nxt = schedule.next_after(probe)
        if nxt is not None:
            _check(nxt.tzinfo is not None and nxt > probe, f"next_after({probe}) = {nxt}")


TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target(
            "raft_codec",
            "raft/codec.py: every input decodes (message, entry, conf change, hard state, "
            "snapshot meta) or raises CodecError; decoded values re-encode to equal values",
            _raft_one,
            _raft_seeds,
        ),
        Target(
            "rpc_frames",
            "rpc/framing.py: a byte stream cut anywhere yields frames or FrameError, a failed "
            "decoder stays failed, and every frame re-encodes to an equal frame",
            _rpc_one,
            _rpc_seeds,
        ),
        Target(
            "gossip_codec",
            "gossip/codec.py: every datagram (SWIM and keyring messages) decodes or raises "
            "CodecError; decoded packets re-encode to equal packets",
            _gossip_one,
            lambda: [encode_packet(p) for p in GOSSIP_CORPUS],
        ),
        Target(
            "cluster_wire",
            "cluster/wire.py: apply replies, members, hello, peers and peer references decode "
            "or raise WireError; decoded values re-encode to equal values",
            _wire_one,
            _wire_seeds,
        ),
        Target(
            "commands",
            "commands.py: replicated command bytes decode or raise CommandError; decoded "
            "commands re-encode to equal commands",
            _command_one,
            _command_seeds,
        ),
        Target(
            "schedule",
            "schedule.py: any spec/timezone/job name parses or raises ScheduleError; a parsed "
            "schedule's next_after is None or an aware time strictly after its argument",
            _schedule_one,
            _schedule_seeds,
        ),
    ]
}
