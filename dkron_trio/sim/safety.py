"""Raft's safety properties, checked incrementally as the simulated nodes produce Readys.

Each check is O(1) (or O(entries in the Ready)) so that it can run after every event:

- election safety: at most one leader per term;
- leader append-only: a leader never truncates or overwrites its own log;
- log matching: entries with the same index and term have the same data and the same
  predecessor term, hence (by induction) identical prefixes;
- leader completeness: a new leader holds every entry committed in an earlier term;
- state machine safety: no two nodes apply different entries (or snapshot images) at an index;
- durability of term and vote: a node's term never decreases and its vote in a term never
  changes, across crashes and restarts.
"""

from __future__ import annotations

import attrs

from dkron_trio.raft.errors import LogCompacted, LogUnavailable
from dkron_trio.raft.storage import RaftStorage
from dkron_trio.raft.types import NONE, Entry, EntryType, HardState, Ready, Role


class SafetyViolation(AssertionError):
    """A broken Raft invariant; the message names the property, nodes, indexes and time."""


@attrs.frozen
class _Chosen:
    term: int
    type: EntryType
    data: bytes
    observed_term: int
    """Term of the node that first reported it committed (>= the term it was committed in)."""


@attrs.define
class RaftSafetyChecker:
    _leaders: dict[int, int] = attrs.field(factory=dict)
    _chosen: dict[int, _Chosen] = attrs.field(factory=dict)
    _max_chosen: int = 0
    _links: dict[tuple[int, int], tuple[int, EntryType, bytes]] = attrs.field(factory=dict)
    _hard: dict[int, HardState] = attrs.field(factory=dict)
    _images: dict[int, bytes] = attrs.field(factory=dict)
    _leader_terms: dict[int, int] = attrs.field(factory=dict)
    """node -> term in which it is currently leader (absent when not leader)."""
    _storages: dict[int, RaftStorage] = attrs.field(factory=dict)

    @property
    def max_chosen(self) -> int:
        return self._max_chosen

    def leader_of(self, term: int) -> int | None:
        return self._leaders.get(term)

    def max_term(self) -> int:
        return max((hs.term for hs in self._hard.values()), default=0)

    # -- hooks called by the simulated node ---------------------------------------------

    def on_start(self, node: int, storage: RaftStorage, hard_state: HardState, now: int) -> None:
        """A node (re)starts on `storage`; the hard state it came back with must not have gone
        back."""
        self._storages[node] = storage
        self._leader_terms.pop(node, None)
        self._check_hard_state(node, hard_state, now, "restart")

    def on_crash(self, node: int) -> None:
        self._storages.pop(node, None)
        self._leader_terms.pop(node, None)

    def before_persist(
        self, node: int, ready: Ready, storage: RaftStorage, *, role: Role, term: int, now: int
    ) -> None:
        """Checks on a Ready against the log it is about to change."""
        if self._leader_terms.get(node) == term and role is Role.LEADER:
            if ready.snapshot is not None:
                raise SafetyViolation(
                    f"t={now}: leader append-only: leader {node} of term {term} installs a "
                    f"snapshot at {ready.snapshot.meta.index}"
                )
            if ready.entries and ready.entries[0].index <= storage.last_index():
                raise SafetyViolation(
                    f"t={now}: leader append-only: leader {node} of term {term} overwrites "
                    f"its log from index {ready.entries[0].index} (last {storage.last_index()})"
                )

    def after_persist(
        self, node: int, ready: Ready, storage: RaftStorage, *, role: Role, term: int, now: int
    ) -> None:
        """Checks once the Ready is persisted (and synced if it asked): the hard state, the
        log as the Ready left it, leadership changes. A node that crashes mid-fsync never gets
        here: what it was writing may be lost, and it sent nothing that depended on it."""
        if ready.hard_state is not None:
            self._check_hard_state(node, ready.hard_state, now, "ready")
        for entry in ready.entries:
            self._link(node, entry, storage, now)
        if role is Role.LEADER:
            if self._leader_terms.get(node) != term:
                self._become_leader(node, term, now)
        else:
            self._leader_terms.pop(node, None)

    def on_apply(self, node: int, entry: Entry, node_term: int, now: int) -> None:
        """A node applies a committed entry: it must be the one every other node applied."""
        seen = self._chosen.get(entry.index)
        if seen is None:
            self._chosen[entry.index] = _Chosen(entry.term, entry.type, entry.data, node_term)
            self._max_chosen = max(self._max_chosen, entry.index)
            for leader, term in self._leader_terms.items():
                if term > node_term:
                    self._check_holds(leader, term, entry.index, now)
            return
        if (seen.term, seen.type, seen.data) != (entry.term, entry.type, entry.data):
            raise SafetyViolation(
                f"t={now}: state machine safety: node {node} applies ({entry.term}, "
                f"{entry.data!r}) at index {entry.index}, others applied ({seen.term}, "
                f"{seen.data!r})"
            )

    def on_image(self, node: int, index: int, image: bytes, now: int) -> None:
        """A state machine image at `index` (taken locally or received as a snapshot)."""
        seen = self._images.setdefault(index, image)
        if seen != image:
            raise SafetyViolation(
                f"t={now}: state machine safety: node {node} has image {image!r} at index "
                f"{index}, another node had {seen!r}"
            )

    # -- internals ----------------------------------------------------------------------

    def _check_hard_state(self, node: int, hs: HardState, now: int, where: str) -> None:
        prev = self._hard.get(node)
        if prev is not None:
            if hs.term < prev.term:
                raise SafetyViolation(
                    f"t={now}: term went back on node {node} ({where}): {prev.term} -> {hs.term}"
                )
            if hs.term == prev.term and prev.vote not in (NONE, hs.vote):
                raise SafetyViolation(
                    f"t={now}: vote changed on node {node} in term {hs.term} ({where}): "
                    f"{prev.vote} -> {hs.vote}"
                )
        self._hard[node] = hs

    def _link(self, node: int, entry: Entry, storage: RaftStorage, now: int) -> None:
        if entry.index < storage.first_index():
            return
        link = (storage.term(entry.index - 1), entry.type, entry.data)
        seen = self._links.setdefault((entry.index, entry.term), link)
        if seen != link:
            raise SafetyViolation(
                f"t={now}: log matching: node {node} holds entry (index {entry.index}, term "
                f"{entry.term}) with predecessor term/data {link[0]}/{link[2]!r}; another node "
                f"has {seen[0]}/{seen[2]!r}"
            )

    def _become_leader(self, node: int, term: int, now: int) -> None:
        holder = self._leaders.setdefault(term, node)
        if holder != node:
            raise SafetyViolation(
                f"t={now}: election safety: nodes {holder} and {node} both lead term {term}"
            )
        self._leader_terms[node] = term
        for index in range(self._max_chosen, 0, -1):
            chosen = self._chosen.get(index)
            if chosen is not None and chosen.observed_term < term:
                self._check_holds(node, term, index, now)
                return

    def _check_holds(self, node: int, term: int, index: int, now: int) -> None:
        """Leader completeness: leader `node` of `term` must hold the entry chosen at `index`."""
        chosen = self._chosen[index]
        try:
            held = self._storages[node].term(index)
        except LogCompacted:
            return  # compacted entries were committed locally; on_apply checked them
        except LogUnavailable:
            held = -1
        if held != chosen.term:
            raise SafetyViolation(
                f"t={now}: leader completeness: leader {node} of term {term} lacks the entry "
                f"committed at index {index} (term {chosen.term}); its log has "
                f"{'nothing' if held < 0 else f'term {held}'} there"
            )
