"""SWIM messages as values. One datagram carries a `Packet`: a tuple of messages, the first
being the one it was sent for and the rest piggybacked news (memberlist's compound message).
"""

from __future__ import annotations

import enum

import attrs

Addr = tuple[str, int]
"""(host, port) where a member receives gossip."""

Tags = dict[str, str]


class MemberState(enum.IntEnum):
    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


@attrs.frozen
class Ping:
    """Are you `target`? Answered with an Ack carrying the same seq."""

    seq: int
    target: str


@attrs.frozen
class PingReq:
    """Please probe `target` at `addr` for me; with `nack`, say so if it does not answer."""

    seq: int
    target: str
    addr: Addr
    nack: bool


@attrs.frozen
class Ack:
    seq: int


@attrs.frozen
class Nack:
    """An indirect prober got no answer: the requester's own network is probably fine."""

    seq: int


@attrs.frozen
class Alive:
    incarnation: int
    node: str
    addr: Addr
    tags: Tags = attrs.field(hash=False)


@attrs.frozen
class Suspect:
    incarnation: int
    node: str
    sender: str
    """Who suspects; independent senders confirm a suspicion (Lifeguard)."""


@attrs.frozen
class Dead:
    """`node` failed, or left when `sender == node` (a leave intent)."""

    incarnation: int
    node: str
    sender: str

    @property
    def is_leave(self) -> bool:
        return self.sender == self.node


@attrs.frozen
class NodeState:
    """One member as carried in a full-state exchange."""

    node: str
    addr: Addr
    incarnation: int
    state: MemberState
    tags: Tags = attrs.field(hash=False)


@attrs.frozen
class PushPull:
    """Part of a full-state exchange (a state larger than a datagram spans several);
    `reply` asks the receiver to send its own state back."""

    reply: bool
    states: tuple[NodeState, ...]


class KeyOp(enum.IntEnum):
    """A keyring operation applied on every member (Serf's keyring queries)."""

    LIST = 0
    INSTALL = 1
    USE = 2
    REMOVE = 3


@attrs.frozen
class KeyRequest:
    """Apply `op` (with `key`, empty for LIST) to your keyring and answer with a KeyResponse
    carrying the same `id`. Not SWIM: the shell handles it, the core ignores it."""

    id: int
    op: KeyOp
    key: bytes


@attrs.frozen
class KeyResponse:
    """`node`'s answer to KeyRequest `id`: `error` is empty when the operation was applied;
    `keys` are its installed keys afterwards, the primary first."""

    id: int
    node: str
    error: str
    keys: tuple[bytes, ...]


Message = Ping | PingReq | Ack | Nack | Alive | Suspect | Dead | PushPull | KeyRequest | KeyResponse
Packet = tuple[Message, ...]
