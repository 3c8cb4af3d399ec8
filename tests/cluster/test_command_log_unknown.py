"""A proposal whose leadership was lost has an unknown outcome: the command log must never
propose it again (chaos, 5 servers, seed 20261122: a DELETE proposed in term 24 and again
in term 25 deleted the job and answered 404)."""

from pathlib import Path
from typing import Any, cast

import trio

from dkron_trio.cluster import wire
from dkron_trio.cluster.command_log import RaftCommandLog
from dkron_trio.cluster.config import ClusterConfig
from dkron_trio.commands import CommandError, DeleteJob, encode_command
from dkron_trio.config import HostPort
from dkron_trio.raft.node import LeadershipLost
from dkron_trio.store.base import ClusterUnavailable


class _LosingLeader:
    """A leader whose every proposal is appended, then its leadership is lost."""

    node_id = 1
    leader_id = 1
    is_leader = True
    applied = 7

    def __init__(self) -> None:
        self.proposals = 0

    async def propose(self, data: bytes) -> object:
        self.proposals += 1
        await trio.lowlevel.checkpoint()
        raise LeadershipLost(2)

    async def next_leadership(self, seen: int) -> tuple[int, object]:
        if seen == -1:
            return 0, None
        await trio.sleep_forever()
        raise AssertionError


def _log(node: _LosingLeader) -> RaftCommandLog:
    address = HostPort("127.0.0.1", 1)
    config = ClusterConfig(node_name="a", data_dir=Path("."), rpc_bind=address, advertise=address)
    return RaftCommandLog(cast(Any, node), cast(Any, None), config)


async def test_a_leader_does_not_propose_again_after_losing_leadership() -> None:
    node = _LosingLeader()
    with trio.fail_after(5):
        try:
            await _log(node).apply(DeleteJob("kv-4"))
        except ClusterUnavailable as exc:
            assert "outcome unknown" in str(exc)
        else:
            raise AssertionError("no error")
    assert node.proposals == 1


async def test_the_apply_handler_says_unknown_not_not_the_leader() -> None:
    """ "not the leader" tells the forwarding server nothing was proposed, so it retries."""
    node = _LosingLeader()
    result, _ = wire.decode_reply(await _log(node).apply_here(encode_command(DeleteJob("a"))))
    assert isinstance(result, ClusterUnavailable)
    assert str(result) != "not the leader"
    assert "outcome unknown" in str(result)


async def test_the_apply_handler_refuses_bytes_that_are_no_command() -> None:
    """Checked at the log's door: replicas do not check committed entries again."""
    node = _LosingLeader()
    result, applied = wire.decode_reply(await _log(node).apply_here(b"command"))
    assert isinstance(result, CommandError)
    assert applied == 7
    assert node.proposals == 0
