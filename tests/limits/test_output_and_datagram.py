"""The output cap and the gossip datagram size are configurable and reach their users."""

from datetime import timedelta

import pytest
import trio

from dkron_trio.config import AgentConfig, ConfigError, load_config
from dkron_trio.executors.base import ExecutionRequest
from dkron_trio.executors.registry import get_executor
from dkron_trio.gossip.service import GossipService
from tests.store.helpers import T0


def _config(**flags: object) -> AgentConfig:
    return load_config(
        {k.replace("_", "-"): v for k, v in flags.items()}, {}, None, [], hostname="h"
    )


async def test_output_limit_keeps_the_tail_of_that_many_bytes() -> None:
    executor = get_executor("shell", 2048)
    request = ExecutionRequest(
        job_name="j",
        execution_id="1",
        scheduled_at=T0,
        attempt=1,
        fence=1,
        executor_config={"command": "head -c 10000 /dev/zero", "shell": "true"},
        timeout=timedelta(seconds=30),
    )
    with trio.fail_after(30):
        result = await executor.run(request, lambda chunk: None)
    assert result.success
    assert 2000 <= len(result.output.encode()) <= 2048 + 200


def test_output_limit_and_datagram_size_are_checked() -> None:
    with pytest.raises(ConfigError, match="output-limit"):
        _config(output_limit="10")
    with pytest.raises(ConfigError, match="gossip-max-datagram"):
        _config(gossip_max_datagram="100")


def test_the_datagram_size_reaches_gossip() -> None:
    config = _config(gossip_max_datagram="8000", bind_addr="127.0.0.1:0")
    service = GossipService(config, {})
    assert service._node._config.udp_buffer_size == 8000
