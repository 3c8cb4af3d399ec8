"""RPC framing on loopback against trio-websocket, measured in the same run.

The server runs in a child process (so client and server each get a core), the client here.
Three workloads per transport, each on one connection with 64-byte bodies:

- round trips/s with 1 sequential caller (latency p50/p99/max per call);
- round trips/s with 64 concurrent callers (same latencies, under load);
- one-way frames/s: N frames sent back to back, then one round trip that returns once the
  server has handled all N.

trio-websocket carries the same msgpack `[id, body]` messages, matched to callers by id the
same way the RPC peer does; its server echoes inline (cheaper than the RPC server, which
runs each request as a task). The ratio RPC / trio-websocket is printed per workload.

    .venv/bin/python scripts/bench/rpc.py [--calls 5000] [--oneway 50000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import msgpack
import trio
import trio_websocket

from dkron_trio.config import HostPort
from dkron_trio.rpc.config import Overflow, RpcConfig
from dkron_trio.rpc.peer import Peer
from dkron_trio.rpc.server import RpcServer

BODY = b"x" * 64
CONCURRENCY = 64
CONFIG = RpcConfig(queue_size=4096, overflow=Overflow.BLOCK, call_timeout=60.0)

Call = Callable[[bytes], Awaitable[bytes]]


# -- servers (child process) -----------------------------------------------------------


class Tally:
    """Counts one-way frames; `wait(n)` returns once n have arrived."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = trio.Event()

    def add(self) -> None:
        self.count += 1
        self._changed.set()
        self._changed = trio.Event()

    async def wait(self, n: int) -> None:
        while self.count < n:
            await self._changed.wait()


async def serve_rpc() -> None:
    server = RpcServer(CONFIG)
    tally = Tally()

    async def echo(body: bytes) -> bytes:
        return body

    async def note(body: bytes) -> None:
        tally.add()

    async def sync(body: bytes) -> bytes:
        n = int(body)
        await tally.wait(n)
        tally.count -= n
        return b"ok"

    server.on_request("echo", echo)
    server.on_request("sync", sync)
    server.on_message("note", note)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run, HostPort("127.0.0.1", 0))
        print(port, flush=True)


async def serve_ws() -> None:
    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        notes = 0
        try:
            while True:
                message = await ws.get_message()
                assert isinstance(message, bytes)
                call_id, body = msgpack.unpackb(message)
                if call_id == 0:
                    notes += 1
                elif body.startswith(b"sync:"):
                    n = int(body[5:])
                    assert notes >= n, "websocket delivers in order"
                    notes -= n
                    await ws.send_message(msgpack.packb([call_id, b"ok"]))
                else:
                    await ws.send_message(msgpack.packb([call_id, body]))
        except trio_websocket.ConnectionClosed:
            pass

    async with trio.open_nursery() as nursery:
        server = await nursery.start(trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None)
        print(server.port, flush=True)


# -- clients ---------------------------------------------------------------------------


class WsClient:
    """Request/response over one WebSocket: ids in the message, a reader task matching them."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[trio.Event, list[bytes]]] = {}

    async def read(self) -> None:
        while True:
            call_id, body = msgpack.unpackb(await self._ws.get_message())
            event, slot = self._waiting.pop(call_id)
            slot.append(body)
            event.set()

    async def call(self, body: bytes) -> bytes:
        call_id = next(self._ids)
        event, slot = trio.Event(), list[bytes]()
        self._waiting[call_id] = (event, slot)
        await self._ws.send_message(msgpack.packb([call_id, body]))
        await event.wait()
        reply: bytes = slot[0]
        return reply

    async def note(self, body: bytes) -> None:
        await self._ws.send_message(msgpack.packb([0, body]))


async def round_trips(call: Call, total: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    per_task = total // concurrency

    async def worker() -> None:
        for _ in range(per_task):
            start = time.perf_counter()
            reply = await call(BODY)
            latencies.append(time.perf_counter() - start)
            assert reply == BODY

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    return len(latencies) / (time.perf_counter() - start), latencies


async def one_way(send: Callable[[bytes], Awaitable[None]], sync: Call, total: int) -> float:
    start = time.perf_counter()
    for _ in range(total):
        await send(BODY)
    await sync(str(total).encode())
    return total / (time.perf_counter() - start)


Results = dict[str, tuple[float, list[float]]]


async def measure_rpc(port: int, calls: int, oneway: int) -> Results:
    peer = Peer(HostPort("127.0.0.1", port), CONFIG, random.Random(0))
    async with trio.open_nursery() as nursery:
        await nursery.start(peer.run)

        async def echo(body: bytes) -> bytes:
            return await peer.call("echo", body)

        async def note(body: bytes) -> None:
            await peer.send("note", body)

        async def sync(body: bytes) -> bytes:
            return await peer.call("sync", body)

        await round_trips(echo, 200, 1)
        results = {
            "seq": await round_trips(echo, calls, 1),
            "c64": await round_trips(echo, calls * 4, CONCURRENCY),
            "oneway": (await one_way(note, sync, oneway), []),
        }
        nursery.cancel_scope.cancel()
    return results


async def measure_ws(port: int, calls: int, oneway: int) -> Results:
    async with (
        trio_websocket.open_websocket("127.0.0.1", port, "/", use_ssl=False) as ws,
        trio.open_nursery() as nursery,
    ):
        client = WsClient(ws)
        nursery.start_soon(client.read)

        async def sync(body: bytes) -> bytes:
            return await client.call(b"sync:" + body)

        await round_trips(client.call, 200, 1)
        results = {
            "seq": await round_trips(client.call, calls, 1),
            "c64": await round_trips(client.call, calls * 4, CONCURRENCY),
            "oneway": (await one_way(client.note, sync, oneway), []),
        }
        nursery.cancel_scope.cancel()
    return results


def start_server(kind: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def run_one(kind: str, calls: int, oneway: int) -> Results:
    proc, port = start_server(kind)
    try:
        measure = measure_rpc if kind == "rpc" else measure_ws
        return trio.run(measure, port, calls, oneway)
    finally:
        proc.terminate()
        proc.wait()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def describe(label: str, rate: float, latencies: list[float], unit: str) -> str:
    text = f"{label:<22} {rate:>9,.0f} {unit}"
    if latencies:
        text += (
            f"   p50 {pct(latencies, 0.5):6.3f} ms  p99 {pct(latencies, 0.99):6.3f} ms"
            f"  max {max(latencies) * 1000:7.3f} ms"
        )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--oneway", type=int, default=50000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--serve", choices=("rpc", "ws"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(serve_rpc if args.serve == "rpc" else serve_ws)
        return
    print(
        f"nproc={os.cpu_count()} python={platform.python_version()} trio={trio.__version__} "
        f"trio-websocket={trio_websocket.__version__} body={len(BODY)} B "
        f"calls={args.calls} (x4 at {CONCURRENCY}) oneway={args.oneway} repeats={args.repeats}"
    )
    names = {"seq": "round trips, 1 caller", "c64": "round trips, 64", "oneway": "one-way frames"}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(1, args.repeats + 1):
        rpc = run_one("rpc", args.calls, args.oneway)
        ws = run_one("ws", args.calls, args.oneway)
        print(f"-- repeat {repeat}")
        for name, label in names.items():
            unit = "frames/s" if name == "oneway" else "calls/s"
            print("  rpc " + describe(label, rpc[name][0], rpc[name][1], unit))
            print("  ws  " + describe(label, ws[name][0], ws[name][1], unit))
            ratio = rpc[name][0] / ws[name][0]
            ratios[name].append(ratio)
            print(f"      ratio rpc/ws {ratio:.2f}x")
    print("-- summary (ratio rpc / trio-websocket per repeat, median)")
    for name, label in names.items():
        values = ", ".join(f"{r:.2f}" for r in ratios[name])
        print(f"  {label:<22} {values}  median {statistics.median(ratios[name]):.2f}x")


if __name__ == "__main__":
    main()
