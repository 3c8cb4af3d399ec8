"""RaftCommandLog: commits commands through the local Raft node, or forwards them.

On the leader a command is proposed and its result returned once applied. Elsewhere it is
sent to the leader over RPC (`APPLY`); the reply carries the leader's applied index, and the
forwarding server waits until its own replica has applied that far, so a client reads its
own write from whichever server it asked. With no leader the write waits for one, up to the
apply timeout, then fails with ClusterUnavailable (HTTP 503).

A command is proposed at most once per call: once it may have reached a log (a proposal
whose leadership was lost, a forward whose connection broke after sending), the outcome is
unknown and the caller gets ClusterUnavailable rather than a silent second copy.
"""

from collections.abc import Callable

import attrs
import trio

from dkron_trio.cluster import wire
from dkron_trio.cluster.config import ClusterConfig
from dkron_trio.commands import Command, CommandError, decode_command, encode_command
from dkron_trio.logs import get_logger
from dkron_trio.raft.errors import NotLeader, RaftError
from dkron_trio.raft.node import LeadershipLost, RaftNode
from dkron_trio.raft.types import NONE
from dkron_trio.rpc.errors import RpcError
from dkron_trio.rpc.raft_transport import RaftRpcTransport
from dkron_trio.store.base import ClusterUnavailable

log = get_logger(__name__)

_LEADER_RECHECK = 0.2
"""Longest wait for a leadership change before trying a write again."""


@attrs.define(eq=False)
class RaftCommandLog:
    _node: RaftNode
    _transport: RaftRpcTransport
    _config: ClusterConfig
    _expect: Callable[[bytes, Command], None] | None = None
    """Told each command this server commits and its bytes (`StoreStateMachine.expect`),
    so applying its entry here needs no second decode."""

    async def apply(self, cmd: Command, *, forward: bool = True) -> object:
        """Commit ``cmd``; without ``forward`` only while this server leads (a leader's own
        decisions: a plan forwarded after its leadership ended would run its ticks twice)."""
        data = encode_command(cmd)
        if self._expect is not None:
            self._expect(data, cmd)
        if not forward:
            return await self._propose_here(data)
        with trio.move_on_after(self._config.apply_timeout):
            while True:
                result = await self._try_once(data)
                if result is not _RETRY:
                    return result
                await self._await_leader_change()
        raise ClusterUnavailable(f"no leader committed the write in {self._config.apply_timeout}s")

    async def apply_here(self, data: bytes) -> bytes:
        """The `APPLY` handler: propose on this node if it leads (no second hop). The bytes
        are checked as strictly as `encode_command` checks its own here, at the log's
        door: replicas apply committed entries without checking them again."""
        if not self._node.is_leader:
            return wire.encode_reply(ClusterUnavailable("not the leader"), self._node.applied)
        try:
            cmd = decode_command(data)
        except CommandError as exc:
            return wire.encode_reply(exc, self._node.applied)
        if self._expect is not None:
            self._expect(data, cmd)
        try:
            result = await self._node.propose(data)
        except LeadershipLost as exc:  # a NotLeader whose entry may commit: not a retry
            result = ClusterUnavailable(f"write outcome unknown: {exc}")
        except NotLeader:
            result = ClusterUnavailable("not the leader")
        except RaftError as exc:
            result = ClusterUnavailable(f"write outcome unknown: {exc}")
        return wire.encode_reply(result, self._node.applied)

    async def linearize(self) -> None:
        """ReadIndex through the leader (the local node asks it), then wait to apply it."""
        try:
            with trio.fail_after(self._config.apply_timeout):
                index = await self._node.read_index()
                await self._node.wait_applied(index)
        except (RaftError, trio.TooSlowError) as exc:
            raise ClusterUnavailable(f"no linearizable read possible: {exc}") from None

    async def _propose_here(self, data: bytes) -> object:
        try:
            return await self._node.propose(data)
        except NotLeader:
            raise ClusterUnavailable("no longer the leader: not forwarded") from None
        except RaftError as exc:
            raise ClusterUnavailable(f"write outcome unknown: {exc}") from None

    async def _try_once(self, data: bytes) -> object:
        node = self._node
        if node.is_leader:
            try:
                return await node.propose(data)
            except LeadershipLost as exc:  # first: it is a NotLeader whose entry may commit
                raise ClusterUnavailable(f"write outcome unknown: {exc}") from None
            except NotLeader:
                return _RETRY
            except RaftError as exc:
                raise ClusterUnavailable(str(exc)) from None
        leader = node.leader_id
        if leader in (NONE, node.node_id):
            return _RETRY
        reply = await self._forward(leader, data)
        result, applied = wire.decode_reply(reply)
        if isinstance(result, ClusterUnavailable) and str(result) == "not the leader":
            return _RETRY
        with trio.move_on_after(self._config.forward_timeout):
            await node.wait_applied(applied)
        return result

    async def _forward(self, leader: int, data: bytes) -> bytes:
        """The leader's reply; ClusterUnavailable when it fails, times out, or leadership
        changes meanwhile (a dead leader would otherwise hold the write until the timeout)."""
        version, _ = await self._node.next_leadership(-1)
        outcome: list[bytes | BaseException] = []
        async with trio.open_nursery() as nursery:

            async def forward() -> None:
                try:
                    with trio.fail_after(self._config.forward_timeout):
                        outcome.append(await self._transport.call(leader, wire.APPLY, data))
                except (trio.TooSlowError, RpcError) as exc:
                    outcome.append(exc)
                nursery.cancel_scope.cancel()

            async def watch() -> None:
                await self._node.next_leadership(version)
                outcome.append(ClusterUnavailable("the leader changed while forwarding"))
                nursery.cancel_scope.cancel()

            nursery.start_soon(forward)
            nursery.start_soon(watch)
        first = outcome[0]
        if isinstance(first, bytes):
            return first
        raise ClusterUnavailable(f"forwarding to the leader failed (outcome unknown): {first}")

    async def _await_leader_change(self) -> None:
        """Until the leadership this node sees changes, or a short while: the leader it
        knows may be stale (the forward said so) without a change showing here yet."""
        version, _ = await self._node.next_leadership(-1)
        with trio.move_on_after(_LEADER_RECHECK):
            await self._node.next_leadership(version)


_RETRY = object()
"""A try that certainly reached no log: wait for a leader and try again."""
