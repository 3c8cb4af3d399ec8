"""LoopLag: the mean lateness of its timer over the last second."""

import trio
from trio.testing import MockClock

from dkron_trio.loop_lag import LoopLag


def test_the_lag_is_the_mean_over_the_window() -> None:
    lag = LoopLag(interval=0.05, window=1.0)
    assert lag.value() == 0.0
    lag.record(10.0, 0.4)
    lag.record(10.5, 0.0)
    lag.record(10.6, -0.01)  # early (clock granularity) counts as on time
    assert abs(lag.value() - 0.4 / 3) < 1e-9
    lag.record(11.2, 0.0)  # the sample of 10.0 is out of the window now
    assert lag.value() == 0.0


async def test_a_loop_held_up_shows_as_lag_and_then_recovers(autojump_clock: MockClock) -> None:
    lag = LoopLag(interval=0.05, window=1.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(lag.run)
        await trio.sleep(2)
        assert lag.value() == 0.0
        for _ in range(10):  # ten steps that each hold the loop for 0.3 s
            autojump_clock.jump(0.3)
            await trio.lowlevel.checkpoint()
        assert lag.value() > 0.2
        await trio.sleep(1.5)
        assert lag.value() == 0.0
        nursery.cancel_scope.cancel()
