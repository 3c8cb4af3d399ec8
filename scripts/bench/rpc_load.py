"""The RPC load client of raft_cluster.py: "apply" requests sent by trio tasks over one
dkron-trio `Peer` connection, carrying either ``SetJob`` commands (a new job per write) or
``SetCursor`` commands (a small write, one job's cursor, the size of etcd's or PySyncObj's
put); and, run as a script, its ceiling: an RPC server that answers every "apply" at once
(prints its port on stdout).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import attrs
import trio
from api import Result, job_body

from dkron_trio.cluster import wire
from dkron_trio.commands import SetCursor, SetJob, encode_command
from dkron_trio.config import HostPort
from dkron_trio.job import Job
from dkron_trio.rpc.config import Overflow, RpcConfig
from dkron_trio.rpc.errors import RemoteError, RpcTimeout, RpcUnavailable
from dkron_trio.rpc.peer import Peer
from dkron_trio.rpc.server import RpcServer

RPC_CONFIG = RpcConfig(queue_size=4096, overflow=Overflow.BLOCK, call_timeout=30.0)


class SetJobBodies:
    """``encode_command(SetJob(job))`` for jobs that differ only in their name.

    encode_command checks its own round trip and costs about 1.6 ms here, more than the RPC
    call it feeds; so the client encodes one template job and swaps in each new name (always
    of the template's length, so the msgpack framing is unchanged). The swap is checked once
    against a real encode_command of a renamed job.
    """

    def __init__(self, names: Callable[[], str]) -> None:
        """``names()`` gives fresh job names, all of one length."""
        self._template_name = names()
        job = Job.from_json(json.loads(job_body(self._template_name)), now=datetime.now(UTC))
        self._template = encode_command(SetJob(job))
        probe = names()
        if self.body(probe) != encode_command(SetJob(attrs.evolve(job, name=probe))):
            raise RuntimeError("SetJob bodies: the name swap does not match encode_command")

    def body(self, name: str) -> bytes:
        return self._template.replace(self._template_name.encode(), name.encode())


Bodies = Callable[[], bytes]
"""One caller's next "apply" body."""


async def _rpc_load(
    name: str, port: int, seconds: float, prepare: Callable[[Peer], Awaitable[list[Bodies]]]
) -> Result:
    """One task per body source that ``prepare`` returns, all sharing one `Peer`
    connection, each sending "apply" requests back to back for ``seconds``."""
    peer = Peer(HostPort("127.0.0.1", port), RPC_CONFIG, random.Random(0))
    latencies: list[float] = []
    errors = [0]
    sample = [""]
    async with trio.open_nursery() as nursery:
        await nursery.start(peer.run)
        callers = await prepare(peer)
        deadline = time.perf_counter() + seconds

        async def worker(bodies: Bodies) -> None:
            while time.perf_counter() < deadline:
                body = bodies()
                started = time.perf_counter()
                try:
                    result, _ = wire.decode_reply(await peer.call("apply", body))
                except (RemoteError, RpcTimeout, RpcUnavailable, wire.WireError) as exc:
                    errors[0] += 1
                    sample[0] = repr(exc)
                    continue
                if isinstance(result, Exception):  # e.g. "not the leader": not acknowledged
                    errors[0] += 1
                    sample[0] = repr(result)
                    continue
                latencies.append(time.perf_counter() - started)

        began = time.perf_counter()
        async with trio.open_nursery() as workers:
            for bodies in callers:
                workers.start_soon(worker, bodies)
        elapsed = time.perf_counter() - began
        nursery.cancel_scope.cancel()
    return Result(name, elapsed, latencies, errors[0], sample[0])


def rpc_applies(
    name: str, port: int, callers: int, seconds: float, names: Callable[[], str]
) -> Result:
    """``SetJob`` of a new job per write."""
    bodies = SetJobBodies(names)

    async def prepare(peer: Peer) -> list[Bodies]:
        await peer.call("apply", bodies.body(names()))  # connected, and the leader answers
        return [lambda: bodies.body(names()) for _ in range(callers)]

    return trio.run(_rpc_load, name, port, seconds, prepare)


def rpc_cursor_applies(
    name: str, port: int, callers: int, seconds: float, names: Callable[[], str]
) -> Result:
    """``SetCursor``: each caller first creates its own job, then moves that job's cursor
    one second further per write (a command of about 40 bytes)."""
    template = SetJobBodies(names)
    start = datetime.now(UTC).replace(microsecond=0)

    def cursors(job_name: str) -> Bodies:
        step = iter(range(1, 1 << 62))
        return lambda: encode_command(SetCursor(job_name, start + timedelta(seconds=next(step))))

    async def prepare(peer: Peer) -> list[Bodies]:
        out = []
        for _ in range(callers):
            job_name = names()
            result, _ = wire.decode_reply(await peer.call("apply", template.body(job_name)))
            if isinstance(result, Exception):
                raise RuntimeError(f"SetCursor load: creating {job_name}: {result!r}")
            out.append(cursors(job_name))
        return out

    return trio.run(_rpc_load, name, port, seconds, prepare)


async def serve_rpc_ceiling() -> None:
    """The RPC client's ceiling: answer every "apply" at once (prints the bound port)."""
    server = RpcServer(RPC_CONFIG)
    reply = wire.encode_reply(None, 0)

    async def apply(body: bytes) -> bytes:
        return reply

    server.on_request("apply", apply)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run, HostPort("127.0.0.1", 0))
        print(port, flush=True)


if __name__ == "__main__":
    trio.run(serve_rpc_ceiling)
