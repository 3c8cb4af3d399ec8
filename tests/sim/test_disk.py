"""The simulated disk: fsync makes writes durable; a crash keeps a prefix of the rest, torn."""

from __future__ import annotations

import random

from dkron_trio.raft.types import ConfState, Entry, HardState, Ready
from dkron_trio.sim.disk import SimDisk

CONF = ConfState()  # a joining node: its log starts at index 1


def entries(lo: int, hi: int, term: int = 1) -> tuple[Entry, ...]:
    return tuple(Entry(term, i, data=b"x%d" % i) for i in range(lo, hi))


def test_synced_writes_survive_a_crash() -> None:
    disk = SimDisk(CONF)
    disk.persist(Ready(hard_state=HardState(2, 1, 0), entries=entries(1, 4), must_sync=True))
    disk.sync()
    disk.crash(random.Random(0))
    assert [e.index for e in disk.durable_entries()] == [1, 2, 3]
    assert disk.storage.last_index() == 3
    assert disk.storage.initial_state()[0] == HardState(2, 1, 0)


def test_unsynced_writes_are_visible_until_a_crash_then_maybe_lost() -> None:
    outcomes = set()
    for seed in range(40):
        disk = SimDisk(CONF)
        disk.persist(Ready(entries=entries(1, 3)))
        disk.sync()
        disk.persist(Ready(entries=entries(3, 7)))
        disk.persist(Ready(hard_state=HardState(1, 0, 6)))
        assert disk.storage.last_index() == 6
        assert disk.unsynced_writes() == 2
        loss = disk.crash(random.Random(seed))
        assert disk.unsynced_writes() == 0
        last = disk.storage.last_index()
        assert 2 <= last <= 6
        assert disk.storage.last_index() == len(disk.durable_entries())
        outcomes.add((last, loss.lost_writes, loss.torn))
    lasts = {last for last, _, _ in outcomes}
    assert {2, 6} <= lasts
    assert lasts - {2, 6}, "some crash should tear the append"
    assert any(torn for _, _, torn in outcomes)


def test_a_crash_tears_an_overwrite_after_truncating() -> None:
    terms = set()
    for seed in range(30):
        trial = SimDisk(CONF)
        trial.persist(Ready(entries=entries(1, 6)))
        trial.sync()
        trial.persist(Ready(entries=entries(3, 6, term=2)))
        trial.crash(random.Random(seed))
        terms.add(tuple(e.term for e in trial.durable_entries()))
    assert (1, 1, 1, 1, 1) in terms
    assert (1, 1, 2, 2, 2) in terms
    assert any(len(t) < 5 for t in terms)
