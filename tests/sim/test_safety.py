"""The safety checker catches each broken Raft property (fed hand-made Readys)."""

from __future__ import annotations

import pytest

from dkron_trio.raft.storage import MemoryRaftStorage
from dkron_trio.raft.types import Entry, HardState, Ready, Role
from dkron_trio.sim.safety import RaftSafetyChecker, SafetyViolation


class Node:
    """A storage plus the checker calls a simulated node makes around each Ready."""

    def __init__(self, checker: RaftSafetyChecker, node_id: int) -> None:
        self.checker = checker
        self.id = node_id
        self.storage = MemoryRaftStorage()  # empty: the log starts at index 1
        checker.on_start(node_id, self.storage, HardState(), 0)

    def ready(self, ready: Ready, role: Role = Role.FOLLOWER, term: int = 1) -> None:
        self.checker.before_persist(self.id, ready, self.storage, role=role, term=term, now=0)
        self.storage.save(ready)
        self.checker.after_persist(self.id, ready, self.storage, role=role, term=term, now=0)

    def apply(self, entry: Entry, term: int = 1) -> None:
        self.checker.on_apply(self.id, entry, term, 0)


def e(term: int, index: int, data: bytes = b"") -> Entry:
    return Entry(term, index, data=data or b"%d.%d" % (term, index))


def test_two_leaders_in_one_term() -> None:
    checker = RaftSafetyChecker()
    a, b = Node(checker, 1), Node(checker, 2)
    a.ready(Ready(hard_state=HardState(1, 1, 0)), Role.LEADER, 1)
    with pytest.raises(SafetyViolation, match="election safety"):
        b.ready(Ready(hard_state=HardState(1, 2, 0)), Role.LEADER, 1)


def test_leader_of_a_new_term_is_fine() -> None:
    checker = RaftSafetyChecker()
    a, b = Node(checker, 1), Node(checker, 2)
    a.ready(Ready(hard_state=HardState(1, 1, 0)), Role.LEADER, 1)
    b.ready(Ready(hard_state=HardState(2, 2, 0)), Role.LEADER, 2)
    assert checker.leader_of(1) == 1
    assert checker.leader_of(2) == 2


def test_leader_overwriting_its_log() -> None:
    checker = RaftSafetyChecker()
    a = Node(checker, 1)
    a.ready(Ready(entries=(e(1, 1), e(1, 2))), Role.LEADER, 1)
    with pytest.raises(SafetyViolation, match="append-only"):
        a.ready(Ready(entries=(e(1, 2, b"other"),)), Role.LEADER, 1)


def test_log_matching() -> None:
    checker = RaftSafetyChecker()
    a, b = Node(checker, 1), Node(checker, 2)
    a.ready(Ready(entries=(e(1, 1), e(1, 2))))
    b.ready(Ready(entries=(e(1, 1),)))
    with pytest.raises(SafetyViolation, match="log matching"):
        b.ready(Ready(entries=(e(1, 2, b"different"),)))


def test_log_matching_checks_the_predecessor() -> None:
    checker = RaftSafetyChecker()
    a, b = Node(checker, 1), Node(checker, 2)
    a.ready(Ready(entries=(e(1, 1), e(3, 2, b"same"))))
    b.ready(Ready(entries=(e(2, 1),)))
    with pytest.raises(SafetyViolation, match="log matching"):
        b.ready(Ready(entries=(e(3, 2, b"same"),)))


def test_state_machine_safety() -> None:
    checker = RaftSafetyChecker()
    a, b = Node(checker, 1), Node(checker, 2)
    a.apply(e(1, 1))
    b.apply(e(1, 1))
    with pytest.raises(SafetyViolation, match="state machine safety"):
        b.apply(e(2, 1))
    checker.on_image(1, 5, b"image", 0)
    with pytest.raises(SafetyViolation, match="state machine safety"):
        checker.on_image(2, 5, b"other image", 0)


def test_leader_completeness() -> None:
    checker = RaftSafetyChecker()
    a, b = Node(checker, 1), Node(checker, 2)
    a.ready(Ready(entries=(e(1, 1),)))
    a.apply(e(1, 1), term=1)
    with pytest.raises(SafetyViolation, match="leader completeness"):
        b.ready(Ready(hard_state=HardState(2, 2, 0)), Role.LEADER, 2)


def test_leader_completeness_for_an_entry_committed_after_the_election() -> None:
    checker = RaftSafetyChecker()
    a, b = Node(checker, 1), Node(checker, 2)
    b.ready(Ready(hard_state=HardState(3, 2, 0)), Role.LEADER, 3)
    a.ready(Ready(entries=(e(1, 1),)))
    with pytest.raises(SafetyViolation, match="leader completeness"):
        a.apply(e(1, 1), term=1)


def test_term_and_vote_never_go_back() -> None:
    checker = RaftSafetyChecker()
    a = Node(checker, 1)
    a.ready(Ready(hard_state=HardState(3, 2, 0)))
    with pytest.raises(SafetyViolation, match="term went back"):
        checker.on_start(1, a.storage, HardState(2, 0, 0), 0)
    with pytest.raises(SafetyViolation, match="vote changed"):
        checker.on_start(1, a.storage, HardState(3, 0, 0), 0)
    checker.on_start(1, a.storage, HardState(3, 2, 0), 0)
    a.ready(Ready(hard_state=HardState(4, 0, 0)))
    a.ready(Ready(hard_state=HardState(4, 3, 0)))
    assert checker.max_term() == 4
