"""HTTP API benchmark: one real ``dkron-trio agent --server`` with 10,000 jobs stored, 32
concurrent clients creating, reading and listing jobs.

Usage: python scripts/bench/api.py [--jobs 10000] [--clients 32] [--seconds 5] [--repeats 2]
                                  [--ceilings-only]

The load client is threads, each with its own keep-alive ``http.client`` connection (see
BENCHMARKING.md). Measured in the same run, with the same client and concurrency:

1. the client's own ceiling: a trivial server (raw Trio streams, one canned answer);
2. the bare Quart-Trio + hypercorn ceiling: one trivial JSON route on the same stack we use,
   plain and wrapped in `ShieldedSend` as dkron-trio serves it;
3. dkron-trio (SQLite store, fsync on every write, scheduler running): preloading the jobs
   through the API, then create / read / list-a-page, each repeated; and listing all jobs.

Each server runs in its own process, so client and server do not share a GIL; the machine
has few cores, so the client's CPU use still weighs on every figure (hence the ceilings).
"""

import argparse
import functools
import http.client
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[2]
Request = tuple[str, str, bytes | None]
"""(method, path, body)"""
MakeRequest = Callable[[int, int, random.Random], Request]
"""(client index, request index, the client's rng) -> request"""

PAGE = 25


# ---- servers ---------------------------------------------------------------------------------


def serve_trivial(port: int) -> None:
    """Answer every HTTP/1.1 request on a keep-alive connection with one canned JSON reply."""
    import trio  # noqa: PLC0415 (only the server subprocess needs it)

    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b'Content-Length: 11\r\n\r\n{"ok":true}'
    )

    async def handle(stream: trio.SocketStream) -> None:
        buffer = b""
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
                continue
            head, buffer = buffer[:end], buffer[end + 4 :]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buffer) < length:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
            buffer = buffer[length:]
            await stream.send_all(reply)

    trio.run(functools.partial(trio.serve_tcp, handle, port, host="127.0.0.1"))


def serve_quart(port: int, *, shielded: bool) -> None:
    """One trivial JSON route on Quart-Trio served by hypercorn's Trio worker (with or without
    the `ShieldedSend` wrapper dkron-trio serves its app through)."""
    import trio  # noqa: PLC0415
    from hypercorn.config import Config  # noqa: PLC0415
    from hypercorn.trio import serve  # noqa: PLC0415
    from quart_trio import QuartTrio  # noqa: PLC0415

    from dkron_trio.http.server import ShieldedSend  # noqa: PLC0415

    app = QuartTrio("bare")

    @app.route("/ping", methods=["GET", "POST"])
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    trio.run(serve, ShieldedSend(app) if shielded else app, config)


def free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def wait_ready(port: int, path: str, proc: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server on port {port} not ready after {within}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---- load ------------------------------------------------------------------------------------


@attrs.define
class Result:
    name: str
    seconds: float
    latencies: list[float] = attrs.field(factory=list)
    errors: int = 0
    error_sample: str = ""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        lat = sorted(self.latencies) or [0.0]
        p50 = lat[len(lat) // 2] * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        text = (
            f"  {self.name:<34} {self.rate:>8.0f} req/s  p50 {p50:7.2f} ms  "
            f"p99 {p99:7.2f} ms  max {lat[-1] * 1000:7.1f} ms  n={len(self.latencies)}"
        )
        if self.errors:
            text += f"  errors={self.errors} ({self.error_sample})"
        return text


def run_load(
    name: str,
    port: int,
    clients: int,
    make: MakeRequest,
    expect: int,
    *,
    seconds: float | None = None,
    total: int | None = None,
) -> Result:
    """``clients`` threads, each with one keep-alive connection, until the time is up or
    ``total`` requests were made (split evenly)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    samples = [""] * clients
    start_line = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client(index: int) -> None:
        rng = random.Random(index)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        quota = None if total is None else total // clients + (index < total % clients)
        start_line.wait()
        i = 0
        while (quota is None and time.perf_counter() < deadline[0]) or (
            quota is not None and i < quota
        ):
            method, path, body = make(index, i, rng)
            headers = {"Content-Type": "application/json"} if body is not None else {}
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body, headers)
                response = conn.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                errors[index] += 1
                samples[index] = repr(exc)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                i += 1
                continue
            latencies[index].append(time.perf_counter() - t0)
            if response.status != expect:
                errors[index] += 1
                samples[index] = f"{response.status} {data[:120]!r}"
            i += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + (seconds or 0)
    start_line.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    result = Result(name, elapsed, [x for lat in latencies for x in lat], sum(errors))
    result.error_sample = next((s for s in samples if s), "")
    return result


def job_body(name: str) -> bytes:
    return json.dumps(
        {
            "name": name,
            "schedule": "@every 1h",
            "executor": "shell",
            "executor_config": {"command": "true"},
            "metadata": {"team": f"t{len(name) % 10}", "bench": "api"},
            "owner": "bench",
        }
    ).encode()


def preload_name(i: int) -> str:
    return f"job-{i:06d}"


# ---- main ------------------------------------------------------------------------------------


def machine() -> str:
    return (
        f"machine: nproc={os.cpu_count()}, python {platform.python_version()}, "
        f"{platform.platform()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--ceilings-only", action="store_true", help="skip dkron-trio")
    parser.add_argument("--serve-trivial", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-quart", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-quart-shielded", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_trivial:
        serve_trivial(args.serve_trivial)
        return
    if args.serve_quart:
        serve_quart(args.serve_quart, shielded=False)
        return
    if args.serve_quart_shielded:
        serve_quart(args.serve_quart_shielded, shielded=True)
        return

    clients, seconds = args.clients, args.seconds
    print(machine())
    print(
        f"clients={clients} (threads, keep-alive http.client), {seconds:g}s per measurement, "
        f"{args.repeats} repeats, {args.jobs} jobs stored"
    )
    script = str(Path(__file__).resolve())
    results: dict[str, list[Result]] = {}

    def record(result: Result) -> None:
        results.setdefault(result.name, []).append(result)
        print(result.line(), flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        tmp_dir = Path(tmp)

        def ping(index: int, i: int, rng: random.Random) -> Request:
            return ("GET", "/ping", None)

        print("\nceilings (same client, same concurrency):")
        for label, flag, log in (
            ("client ceiling (trivial server)", "--serve-trivial", "trivial.log"),
            ("bare Quart-Trio + hypercorn", "--serve-quart", "quart.log"),
            ("bare Quart-Trio + hypercorn, shielded", "--serve-quart-shielded", "quart-s.log"),
        ):
            port = free_port()
            proc = start([script, flag, str(port)], tmp_dir / log)
            try:
                wait_ready(port, "/ping", proc)
                for _ in range(args.repeats):
                    record(run_load(label, port, clients, ping, 200, seconds=seconds))
            finally:
                stop(proc)

        if args.ceilings_only:
            return
        port = free_port()
        data_dir = tmp_dir / "dkron.data"
        agent = start(
            [
                "-m",
                "dkron_trio",
                "agent",
                "--server",
                "--node-name",
                "bench",
                "--data-dir",
                str(data_dir),
                "--http-addr",
                f"127.0.0.1:{port}",
                "--log-level",
                "warn",
            ],
            tmp_dir / "agent.log",
        )
        try:
            wait_ready(port, "/health", agent)
            print(f"\ndkron-trio (SQLite in {data_dir}):")

            def preload(index: int, i: int, rng: random.Random) -> Request:
                n = i * clients + index
                return ("POST", "/v1/jobs", job_body(preload_name(n)))

            record(
                run_load(
                    f"preload {args.jobs} jobs (create)",
                    port,
                    clients,
                    preload,
                    201,
                    total=args.jobs,
                )
            )
            counter = [0]
            lock = threading.Lock()

            def create(index: int, i: int, rng: random.Random) -> Request:
                with lock:
                    counter[0] += 1
                    n = counter[0]
                return ("POST", "/v1/jobs", job_body(f"new-{n:07d}"))

            def read(index: int, i: int, rng: random.Random) -> Request:
                return ("GET", f"/v1/jobs/{preload_name(rng.randrange(args.jobs))}", None)

            def list_page(index: int, i: int, rng: random.Random) -> Request:
                start_at = rng.randrange(max(1, args.jobs - PAGE))
                return ("GET", f"/v1/jobs?_start={start_at}&_end={start_at + PAGE}", None)

            def list_filtered(index: int, i: int, rng: random.Random) -> Request:
                return ("GET", f"/v1/jobs?q=job-00{rng.randrange(100):02d}&_end={PAGE}", None)

            for _ in range(args.repeats):
                record(run_load("create job", port, clients, create, 201, seconds=seconds))
                record(run_load("read job", port, clients, read, 200, seconds=seconds))
                record(
                    run_load(f"list page of {PAGE}", port, clients, list_page, 200, seconds=seconds)
                )
                record(
                    run_load(
                        f"list q= filter, first {PAGE}",
                        port,
                        clients,
                        list_filtered,
                        200,
                        seconds=seconds,
                    )
                )

            def list_all(index: int, i: int, rng: random.Random) -> Request:
                return ("GET", "/v1/jobs", None)

            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("GET", "/v1/jobs")
            response = conn.getresponse()
            size = len(response.read())
            total_jobs = response.getheader("X-Total-Count")
            conn.close()
            for _ in range(args.repeats):
                record(
                    run_load(
                        f"list all {total_jobs} jobs ({size / 1e6:.1f} MB), 1 client",
                        port,
                        1,
                        list_all,
                        200,
                        total=3,
                    )
                )
        finally:
            stop(agent)

    bare = statistics.median(r.rate for r in results["bare Quart-Trio + hypercorn"])
    ceiling = statistics.median(r.rate for r in results["client ceiling (trivial server)"])
    print(
        f"\nratios (median of repeats) vs bare Quart-Trio ({bare:.0f} req/s) "
        f"and vs the client ceiling ({ceiling:.0f} req/s):"
    )
    for name, runs in results.items():
        rate = statistics.median(r.rate for r in runs)
        print(f"  {name:<42} {rate / bare:6.2f}x bare   {rate / ceiling:6.2f}x ceiling")


if __name__ == "__main__":
    main()
