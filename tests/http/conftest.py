"""Fixtures: the in-process API under Trio's MockClock (time jumps whenever all tasks wait)."""

import pytest
import trio
import trio.testing

from tests.http.harness import Api, open_api


@pytest.fixture
async def api(autojump_clock: trio.testing.MockClock, nursery: trio.Nursery) -> Api:
    return await open_api(nursery)
