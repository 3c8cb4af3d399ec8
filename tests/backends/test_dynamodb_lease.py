"""The DynamoDB lease watch: a candidate takes a free lease at once, and a held one only
after its renewal counter stood still for the longer of the two ttls by the candidate's own
clock; any renewal, resignation or new holder meanwhile changes what it waits for.

The rule is checked on the pure `LeaseWatch` with made-up times; the last test checks the
driver follows it against a real dynalite (skipped when that is not installed, a failure
under CI, like the other DynamoDB tests)."""

from collections.abc import Iterator

import pytest
import trio

from dkron_trio.backends.dynamodb import open_driver
from dkron_trio.backends.dynamodb_lease import LeaseWatch
from dkron_trio.backends.dynamodb_table import Head
from dkron_trio.store.backend import Lease
from tests.backends import launch_dynamodb

TTL = 2.0
SLACK = 10.0


def _held(renewals: int, ttl: float = TTL, holder: str = "a", fence: int = 1) -> Head:
    return Head(index=7, lease=Lease(holder, fence), renewals=renewals, ttl_ms=round(ttl * 1000))


FREE = Head(index=7, lease=None, renewals=3, ttl_ms=2000)


def test_a_free_lease_may_be_taken_at_once_on_no_condition() -> None:
    watch = LeaseWatch()
    assert watch.may_take(FREE, now=100.0, ttl=TTL)
    assert watch.watched is None


def test_a_lease_renewed_within_its_ttl_is_never_taken() -> None:
    watch = LeaseWatch()
    for step in range(100):  # a renewal every 0.9 ttl, looked at every 0.1 ttl
        now = 100.0 + step * 0.1 * TTL
        assert not watch.may_take(_held(renewals=step // 9), now, TTL)


def test_an_abandoned_lease_is_taken_after_its_ttl_on_the_count_last_seen() -> None:
    watch = LeaseWatch()
    head = _held(renewals=5)
    assert not watch.may_take(head, 100.0, TTL)
    assert not watch.may_take(head, 100.0 + TTL - 0.25, TTL)
    assert watch.may_take(head, 100.0 + TTL, TTL)
    assert watch.watched == head  # the take is conditioned on renewal count 5


def test_a_holder_with_a_longer_ttl_is_not_cut_short() -> None:
    watch = LeaseWatch()
    head = _held(renewals=5, ttl=3 * TTL)
    assert not watch.may_take(head, 100.0, TTL)
    assert not watch.may_take(head, 100.0 + 3 * TTL - 0.25, TTL)
    assert watch.may_take(head, 100.0 + 3 * TTL, TTL)


def test_a_renewal_restarts_the_wait() -> None:
    watch = LeaseWatch()
    assert not watch.may_take(_held(renewals=5), 100.0, TTL)
    assert not watch.may_take(_held(renewals=6), 100.0 + TTL - 0.25, TTL)
    assert not watch.may_take(_held(renewals=6), 100.0 + TTL, TTL)
    assert watch.may_take(_held(renewals=6), 100.0 + 2 * TTL - 0.25, TTL)
    assert watch.watched == _held(renewals=6)


def test_a_new_holder_restarts_the_wait() -> None:
    watch = LeaseWatch()
    assert not watch.may_take(_held(renewals=5), 100.0, TTL)
    replaced = _held(renewals=6, holder="c", fence=2)  # taking the lease counts as a renewal
    assert not watch.may_take(replaced, 100.0 + TTL, TTL)
    assert watch.may_take(replaced, 100.0 + 2 * TTL, TTL)
    assert watch.watched == replaced


def test_a_resigned_lease_may_be_taken_at_once() -> None:
    watch = LeaseWatch()
    assert not watch.may_take(_held(renewals=5), 100.0, TTL)
    assert watch.may_take(FREE, 100.5, TTL)
    assert watch.watched is None
    assert not watch.may_take(_held(renewals=8, holder="c"), 101.0, TTL)  # taken meanwhile


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    with launch_dynamodb.running(tmp_path_factory.mktemp("dynamodb")) as found:
        yield found


async def test_the_driver_waits_out_the_holders_longer_ttl(machines: list[str]) -> None:
    a, b = open_driver(machines, "longer-ttl"), open_driver(machines, "longer-ttl")
    with trio.fail_after(SLACK):
        first = await a.campaign("a", TTL)  # then never renewed
    start = trio.current_time()
    with trio.fail_after(SLACK):
        second = await b.campaign("b", TTL / 4)
    assert trio.current_time() - start >= TTL
    assert second == Lease("b", first.fence + 1)
    assert not await a.renew(first, TTL)
    await a.aclose()
    await b.aclose()
