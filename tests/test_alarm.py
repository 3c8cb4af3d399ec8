"""Alarm contract, run against both implementations (Trio's timeouts and the Linux timerfd)
on the real clock, with deadlines a few tens of milliseconds away."""

import sys
from collections.abc import AsyncIterator, Callable

import pytest
import trio
from trio.testing import MockClock

from dkron_trio.alarm import Alarm, TimerFdAlarm, TrioAlarm, open_alarm, sleep_until

STEP = 0.02
"""Seconds between the deadlines of one test: long against the timerfd's resolution."""


def _timerfd() -> Alarm:
    alarm = TimerFdAlarm.create()
    assert alarm is not None, "no timerfd on Linux"
    return alarm


IMPLEMENTATIONS: dict[str, Callable[[], Alarm]] = {"trio": TrioAlarm}
if sys.platform.startswith("linux"):
    IMPLEMENTATIONS["timerfd"] = _timerfd


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
async def alarm(request: pytest.FixtureRequest) -> AsyncIterator[Alarm]:
    made = IMPLEMENTATIONS[request.param]()
    try:
        yield made
    finally:
        made.close()


async def test_it_rings_at_its_deadline_never_before(alarm: Alarm) -> None:
    deadline = trio.current_time() + STEP
    alarm.set(deadline)
    with trio.fail_after(5):
        await alarm.wait()
    assert trio.current_time() >= deadline


async def test_setting_it_again_replaces_the_deadline(alarm: Alarm) -> None:
    start = trio.current_time()
    alarm.set(start + 100)
    rang_at: list[float] = []

    async def waiter() -> None:
        while trio.current_time() < start + 2 * STEP:  # a wake may be early: check, as DueQueue
            await alarm.wait()
        rang_at.append(trio.current_time())

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.sleep(STEP)
            alarm.set(start + 2 * STEP)  # earlier than the first setting: wakes the waiter
    assert start + 2 * STEP <= rang_at[0] < start + 100


async def test_a_cleared_alarm_stays_silent(alarm: Alarm) -> None:
    alarm.set(trio.current_time() + STEP)
    alarm.clear()
    with trio.move_on_after(3 * STEP) as waited:
        while True:
            await alarm.wait()
    assert waited.cancelled_caught


async def test_a_deadline_already_past_rings_at_once(alarm: Alarm) -> None:
    alarm.set(trio.current_time() - 1)
    with trio.fail_after(5):
        await alarm.wait()


async def test_under_mockclock_the_alarm_is_trios(autojump_clock: MockClock) -> None:
    made = open_alarm()
    assert isinstance(made, TrioAlarm)
    made.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")
async def test_on_the_real_clock_the_alarm_is_a_timerfd() -> None:
    made = open_alarm()
    assert isinstance(made, TimerFdAlarm)
    made.close()


async def test_sleep_until_wakes_at_the_deadline_never_before() -> None:
    deadline = trio.current_time() + STEP
    with trio.fail_after(5):
        await sleep_until(deadline)
    assert trio.current_time() >= deadline
    with trio.fail_after(5):
        await sleep_until(deadline - STEP)  # past: returns at once (a checkpoint)


async def test_sleep_until_follows_a_mock_clock(autojump_clock: MockClock) -> None:
    await sleep_until(trio.current_time() + 7.25)
    assert trio.current_time() == 7.25
