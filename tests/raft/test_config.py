"""RaftConfig: defaults and validation in one place."""

from __future__ import annotations

from typing import Any

import pytest

from dkron_trio.raft.types import ConfigError, RaftConfig


def test_defaults_match_the_design() -> None:
    config = RaftConfig()
    assert (config.heartbeat_ticks, config.election_ticks) == (1, 10)
    assert config.pre_vote and config.check_quorum


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"heartbeat_ticks": 0}, "heartbeat_ticks: must be positive"),
        ({"election_ticks": -1}, "election_ticks: must be positive"),
        ({"heartbeat_ticks": 10, "election_ticks": 10}, "must be less than election_ticks"),
        ({"max_inflight_msgs": 1.5}, "max_inflight_msgs: must be an integer"),
        ({"max_size_per_msg": True}, "max_size_per_msg: must be an integer"),
        ({"pre_vote": "yes"}, "pre_vote: must be a boolean"),
        ({"compaction_keep_entries": -1}, "compaction_keep_entries"),
        ({"max_proposal_size": 10, "max_uncommitted_size": 5}, "must not exceed"),
        ({"snapshot_chunk_size": 1 << 30}, "snapshot_chunk_size: must be at most"),
    ],
)
def test_invalid_values_are_rejected_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RaftConfig(**fields)
