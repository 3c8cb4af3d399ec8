"""The RPC load client of raft_cluster.py: "apply" requests carrying ``SetJob`` commands,
sent by trio tasks over one dkron-trio `Peer` connection; and, run as a script, its ceiling:
an RPC server that answers every "apply" at once (prints its port on stdout).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime

import attrs
import trio
from api import Result, job_body

from dkron_trio.cluster import wire
from dkron_trio.commands import SetJob, encode_command
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


async def _rpc_applies(
    name: str, port: int, callers: int, seconds: float, names: Callable[[], str]
) -> Result:
    """``callers`` trio tasks sharing one `Peer` connection, each sending "apply" requests
    back to back for ``seconds``."""
    peer = Peer(HostPort("127.0.0.1", port), RPC_CONFIG, random.Random(0))
    latencies: list[float] = []
    errors = [0]
    sample = [""]
    bodies = SetJobBodies(names)
    async with trio.open_nursery() as nursery:
        await nursery.start(peer.run)
        await peer.call("apply", bodies.body(names()))
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                body = bodies.body(names())
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
            for _ in range(callers):
                workers.start_soon(worker)
        elapsed = time.perf_counter() - began
        nursery.cancel_scope.cancel()
    return Result(name, elapsed, latencies, errors[0], sample[0])


def rpc_applies(
    name: str, port: int, callers: int, seconds: float, names: Callable[[], str]
) -> Result:
    return trio.run(_rpc_applies, name, port, callers, seconds, names)


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
