"""Single-server membership changes: validation when proposed, the resulting ConfState when
applied, and the history needed to label a snapshot with the membership at its index."""

from __future__ import annotations

import attrs

from dkron_trio.raft.codec import CodecError, decode_conf_change
from dkron_trio.raft.errors import ProposalDropped
from dkron_trio.raft.types import ConfChange, ConfChangeType, ConfState, Entry, EntryType


def check_conf_change(conf: ConfState, change: ConfChange) -> None:
    """Raise ProposalDropped if `change` makes no sense against `conf`."""
    node = change.node_id
    if node <= 0:
        raise ProposalDropped(f"conf change: invalid node id {node}")
    if change.type is ConfChangeType.ADD_NODE and node in conf.voters:
        raise ProposalDropped(f"conf change: node {node} is already a voter")
    if change.type is ConfChangeType.ADD_LEARNER:
        if node in conf.voters:
            raise ProposalDropped(f"conf change: node {node} is a voter (demotion unsupported)")
        if node in conf.learners:
            raise ProposalDropped(f"conf change: node {node} is already a learner")
    if change.type is ConfChangeType.REMOVE_NODE:
        if node not in conf.members:
            raise ProposalDropped(f"conf change: node {node} is not a member")
        if conf.voters == {node}:
            raise ProposalDropped(f"conf change: cannot remove the last voter {node}")


def apply_conf_change(conf: ConfState, change: ConfChange) -> ConfState:
    """The membership after `change`; changes that no longer make sense are no-ops, so
    every node derives the same ConfState from the same log."""
    node = change.node_id
    voters, learners = set(conf.voters), set(conf.learners)
    if change.type is ConfChangeType.ADD_NODE:
        learners.discard(node)
        voters.add(node)
    elif change.type is ConfChangeType.ADD_LEARNER:
        if node not in voters:
            learners.add(node)
    elif conf.voters != {node}:
        voters.discard(node)
        learners.discard(node)
    return ConfState(frozenset(voters), frozenset(learners))


@attrs.define
class ConfHistory:
    """(index, ConfState) for each membership in force since the last snapshot."""

    _items: list[tuple[int, ConfState]]

    @classmethod
    def starting_at(cls, index: int, conf: ConfState) -> ConfHistory:
        return cls([(index, conf)])

    @property
    def current(self) -> ConfState:
        return self._items[-1][1]

    def apply_entry(self, entry: Entry) -> ConfState | None:
        """Apply a committed entry; the new membership if it was a membership change.
        A malformed change (which a leader never proposes) is skipped on every node alike."""
        if entry.type is not EntryType.CONF_CHANGE:
            return None
        try:
            change = decode_conf_change(entry.data)
        except CodecError:
            return None
        conf = apply_conf_change(self.current, change)
        self._items.append((entry.index, conf))
        return conf

    def at(self, index: int) -> ConfState:
        """Membership in force after applying entry `index`."""
        found = self._items[0][1]
        for start, conf in self._items:
            if start > index:
                break
            found = conf
        return found

    def forget_before(self, index: int) -> None:
        """Drop memberships superseded at or before `index` (keep the one in force)."""
        while len(self._items) > 1 and self._items[1][0] <= index:
            self._items.pop(0)
