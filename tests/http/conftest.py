"""Fixtures: the in-process API. Tests where time must pass also take ``autojump_clock``
(pytest-trio runs a test under MockClock only when the test itself asks for the clock)."""

import pytest
import trio

from tests.http.harness import Api, open_api


@pytest.fixture
async def api(nursery: trio.Nursery) -> Api:
    return await open_api(nursery)
