"""BackendCommandLog: the `CommandLog` of a server whose log lives in an external backend.

Any server appends a write itself (no forwarding: the backend orders concurrent appends),
then waits until its own replica applied that index and returns the state machine's result
for it, so the caller reads its own write on the server it asked. The leader's own
decisions (`forward=False`: plans, cursors) are appended under its lease's fence, checked
by the backend in the same transaction, so a deposed leader never commits one.

An append whose outcome is unknown (the backend failed mid-call) is not retried: the
caller gets ClusterUnavailable rather than a possible second copy, as with Raft.
"""

import attrs
import trio

from dkron_trio.backends.leadership import Leadership
from dkron_trio.backends.tail import LogTail
from dkron_trio.commands import Command, encode_command
from dkron_trio.logs import get_logger
from dkron_trio.store.backend import BackendError, Fenced, Lease, LogDriver
from dkron_trio.store.base import ClusterUnavailable

log = get_logger(__name__)


@attrs.define(eq=False)
class BackendCommandLog:
    _driver: LogDriver
    _tail: LogTail
    _leadership: Leadership
    _timeout: float

    async def apply(self, cmd: Command, *, forward: bool = True) -> object:
        fence = None
        if not forward:
            fence = self._leadership.current
            if fence is None:
                raise ClusterUnavailable("not the leader: a leader's write is not forwarded")
        return await self.append(encode_command(cmd), fence)

    async def append(self, data: bytes, fence: Lease | None) -> object:
        """Append ``data`` (under ``fence`` if given) and return its result once applied."""
        with self._tail.collect() as results:
            try:
                with trio.fail_after(self._timeout):
                    index = await self._driver.append(data, fence=fence)
            except Fenced as exc:
                raise ClusterUnavailable(f"no longer the leader: {exc}") from None
            except BackendError as exc:
                raise ClusterUnavailable(f"write outcome unknown: {exc}") from None
            except trio.TooSlowError:
                raise ClusterUnavailable(
                    f"the backend took no write in {self._timeout}s (outcome unknown)"
                ) from None
            if index <= self._tail.applied and index not in results:
                log.error(
                    "backend log behind this replica (backend data lost?)",
                    index=index,
                    applied=self._tail.applied,
                )
                raise ClusterUnavailable(
                    f"the backend gave index {index} but this replica applied "
                    f"{self._tail.applied}: the backend's log was lost or replaced"
                )
            await self._tail.offer(index, data)
            try:
                with trio.fail_after(self._timeout):
                    await self._tail.wait_applied(index)
            except trio.TooSlowError:
                raise ClusterUnavailable(
                    f"entry {index} committed but not applied here in {self._timeout}s"
                ) from None
            return results.get(index)

    async def linearize(self) -> None:
        """Return once the replica reflects every append acknowledged before the call."""
        try:
            with trio.fail_after(self._timeout):
                await self._tail.sync()
        except trio.TooSlowError:
            raise ClusterUnavailable(
                f"the backend's log could not be read in {self._timeout}s"
            ) from None
