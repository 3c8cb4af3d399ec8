"""Raft cluster benchmark: 3 durable dkron-trio servers against etcd 3.4 and PySyncObj 0.3.

All three are measured in the same run, on this machine, on 127.0.0.1.

Usage: .venv/bin/python scripts/bench/raft_cluster.py [--quick] [--seconds S] [--repeats N]
           [--trials N] [--skip etcd,pysyncobj,dkron,failover]

Measured, each for 1 sequential client and for 64 concurrent proposers, commits/s and
p50/p99/max latency of one acknowledged write:

- client ceilings: the HTTP load client against a trivial server (raw Trio streams, one canned
  reply) and against the bare Quart-Trio + hypercorn stack dkron-trio serves its API on (one
  trivial JSON route wrapped in `ShieldedSend`, in its own process), so the HTTP layer's share
  is visible; and trio + httpx with a 64-connection pool against the trivial server, to show
  why the HTTP client is threads with keep-alive ``http.client`` connections (BENCHMARKING.md);
  and the RPC client against an RPC server that answers "apply" at once;
- dkron-trio, three ``agent --server`` processes (SQLite, ``synchronous=FULL``): ``POST
  /v1/jobs`` with a small shell job through HTTP; through the RPC port's "apply" request
  (one `Peer` connection, trio tasks as proposers: Raft without HTTP) ``SetJob`` of the same
  job, and ``SetCursor`` (each proposer moves its own job's cursor: a write of about 40
  bytes, the size of the peers' puts, so Raft's own cost shows apart from the job store's); then
  each follower's job count is checked to hold every acknowledged create; with each
  measurement, the CPU time of every server process and of the client, in ms per
  acknowledged commit (steadier than the rates on a shared machine);
- etcd 3.4 (Debian ``etcd-server``), three members, ``POST /v3/kv/put`` through its JSON
  gateway, with the same HTTP client and concurrency;
- PySyncObj 0.3, three nodes with a journal file (never fsynced), a replicated dict written
  through the callback API inside the leader's process (its best case: see peers_pysyncobj.py).

All writes go to the current leader. Then leader failover: kill -9 of the leader, time until
the next write is acknowledged by a survivor (a new attempt every 25 ms, alternating between
the survivors, the first success counts), the killed node restarted between trials (for
dkron-trio, until its job count equals the others'); for dkron-trio and etcd. Not for
PySyncObj: with a few thousand entries in its journal a restarted node lagged, and some
trials found no write for 30 s (long run, unreliable figure).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import api
import peers_etcd
import peers_pysyncobj
import rpc_load
import trio_cluster

BENCH = Path(__file__).resolve().parent
CONCURRENCY = 64
SYSTEMS = ("etcd", "pysyncobj", "dkron", "failover")

Result = api.Result


# ---- figures ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(result: Result) -> str:
    lat = result.latencies
    text = (
        f"  {result.name:<46} {result.rate:>8,.0f} /s  p50 {pct(lat, 0.5) * 1e3:7.2f} ms  "
        f"p99 {pct(lat, 0.99) * 1e3:8.2f} ms  max {max(lat or [0.0]) * 1e3:8.1f} ms  "
        f"n={len(lat)}"
    )
    if result.errors:
        text += f"  errors={result.errors} ({result.error_sample[:100]})"
    return text


@attrs.define
class Board:
    """Every repeat of every measurement, printed as it comes, summarised at the end."""

    runs: dict[str, list[Result]] = attrs.field(factory=dict)
    cpu: dict[str, list[float]] = attrs.field(factory=dict)
    """dkron-trio measurements: CPU ms per commit of the three servers and the client."""
    failover: dict[str, list[float]] = attrs.field(factory=dict)
    missing: list[str] = attrs.field(factory=list)

    def record(self, result: Result) -> None:
        self.runs.setdefault(result.name, []).append(result)
        print(line(result), flush=True)

    def rate(self, name: str) -> float | None:
        runs = self.runs.get(name)
        return statistics.median(r.rate for r in runs) if runs else None

    def record_cpu(self, name: str, leader: int, servers: list[float], client: float) -> None:
        """CPU seconds each server and this (client) process used during `name`'s last
        repeat, printed and kept as ms per acknowledged commit: on a shared machine the
        rates swing with the others' load, the work per commit much less."""
        commits = len(self.runs[name][-1].latencies)
        if not commits:
            return
        per = [s * 1e3 / commits for s in servers]
        total = (sum(servers) + client) * 1e3 / commits
        self.cpu.setdefault(name, []).append(total)
        print(
            "    CPU ms per commit (* leader): "
            + "  ".join(f"s{i}{'*' if i == leader else ''} {c:.2f}" for i, c in enumerate(per))
            + f"  client {client * 1e3 / commits:.2f}  all {total:.2f}",
            flush=True,
        )

    def pooled(self, name: str) -> list[float]:
        return [x for r in self.runs.get(name, []) for x in r.latencies]


# ---- load ---------------------------------------------------------------------------------------

_names = itertools.count()
_names_lock = threading.Lock()


def next_name(prefix: str) -> str:
    with _names_lock:
        return f"{prefix}-{next(_names):07d}"


def rpc_names() -> str:
    return next_name("rpc")


def http_posts(
    name: str, port: int, clients: int, seconds: float, *, path: str, body: Callable[[], bytes]
) -> Result:
    """``clients`` threads with keep-alive ``http.client`` connections POSTing for ``seconds``
    (api.py's load client); a reply other than 200/201 counts as an error."""

    def make(index: int, i: int, rng: random.Random) -> api.Request:
        return ("POST", path, body())

    expect = 201 if path == "/v1/jobs" else 200
    return api.run_load(name, port, clients, make, expect, seconds=seconds)


async def _httpx_posts(port: int, clients: int, seconds: float) -> Result:
    latencies: list[float] = []
    errors = [0]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
    ) as client:
        await client.post("/ping", content=b"{}")
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                response = await client.post("/ping", content=api.job_body("ceiling"))
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors[0] += 1

        began = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(clients):
                nursery.start_soon(worker)
        elapsed = time.perf_counter() - began
    return Result(f"trio + httpx pool -> trivial server, {clients}", elapsed, latencies, errors[0])


# ---- failover ---------------------------------------------------------------------------------


ATTEMPT_EVERY = 0.025
"""Failover probing: a new write attempt this often (seconds), each in its own thread."""


def first_write_after_kill(
    kill: Callable[[], None], survivors: list[int], write: Callable[[int], bool], within: float
) -> float | None:
    """Seconds from kill -9 to the first acknowledged write.

    A new attempt starts every ATTEMPT_EVERY seconds, alternating between the survivors, each
    in its own thread: a request that hangs on a node during the election (until the client's
    timeout) does not hide a write that a later attempt gets through sooner.
    """
    done = threading.Event()
    first: list[float] = []
    lock = threading.Lock()
    threads: list[threading.Thread] = []

    def attempt(index: int, began: float) -> None:
        if write(index):
            with lock:
                if not first:
                    first.append(time.perf_counter() - began)
            done.set()

    began = time.perf_counter()
    kill()
    for index in itertools.cycle(survivors):
        thread = threading.Thread(target=attempt, args=(index, began), daemon=True)
        thread.start()
        threads.append(thread)
        if done.wait(ATTEMPT_EVERY) or time.perf_counter() - began > within:
            break
    for thread in threads:
        thread.join()
    return first[0] if first else None


def failover_trials(
    label: str,
    trials: int,
    *,
    wait_leader: Callable[[], int],
    kill: Callable[[int], None],
    restart: Callable[[int], None],
    write: Callable[[int], bool],
    settle: Callable[[], None],
    board: Board,
) -> None:
    """``settle`` runs after each restart, before the next trial (e.g. waits for catch-up)."""
    times: list[float] = []
    for trial in range(1, trials + 1):
        leader = wait_leader()
        survivors = [i for i in range(3) if i != leader]
        took = first_write_after_kill(functools.partial(kill, leader), survivors, write, within=30)
        restart(leader)
        wait_leader()
        settle()
        if took is None:
            print(f"  {label} trial {trial}: killed node {leader}, no write within 30 s")
            board.missing.append(f"{label} failover trial {trial}: no write within 30 s")
            continue
        times.append(took)
        print(f"  {label} trial {trial}: killed node {leader}, next write after {took:.3f} s")
    board.failover[label] = times
    if times:
        print(
            f"  {label} failover over {len(times)} trials: p50 {pct(times, 0.5):.3f} s  "
            f"p99 {pct(times, 0.99):.3f} s  max {max(times):.3f} s"
        )


# ---- systems ------------------------------------------------------------------------------------


def run_ceilings(tmp: Path, seconds: float, repeats: int, board: Board) -> None:
    print("\n== client ceilings (servers that answer at once; same client and load)")
    for label, flag in (
        ("trivial server", "--serve-trivial"),
        ("bare Quart-Trio + hypercorn", "--serve-quart-shielded"),
    ):
        port = api.free_port()
        proc = api.start([str(BENCH / "api.py"), flag, str(port)], tmp / f"{flag[2:]}.log")
        try:
            api.wait_ready(port, "/ping", proc)
            for _ in range(repeats):
                for clients in (1, CONCURRENCY):
                    board.record(
                        http_posts(
                            f"{label}, {clients}",
                            port,
                            clients,
                            seconds,
                            path="/ping",
                            body=lambda: api.job_body("ceiling"),
                        )
                    )
            if flag == "--serve-trivial":
                for _ in range(repeats):
                    board.record(trio.run(_httpx_posts, port, CONCURRENCY, seconds))
        finally:
            api.stop(proc)
    proc = subprocess.Popen(
        [sys.executable, str(BENCH / "rpc_load.py")],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        for _ in range(repeats):
            for callers in (1, CONCURRENCY):
                board.record(
                    rpc_load.rpc_applies(
                        f"RPC server answering at once, {callers}",
                        port,
                        callers,
                        seconds,
                        rpc_names,
                    )
                )
    finally:
        api.stop(proc)


def run_etcd(tmp: Path, seconds: float, repeats: int, trials: int, board: Board) -> None:
    version = peers_etcd.available()
    if version is None:
        print("\n== etcd: not installed (apt-get install -y etcd-server); skipped")
        board.missing.append("etcd: binary not installed")
        return
    print(f"\n== etcd ({version}): 3 members, POST /v3/kv/put on the leader via the JSON gateway")
    cluster = peers_etcd.EtcdCluster(tmp)
    cluster.start()
    try:
        leader = cluster.wait_leader()
        port = cluster.client_ports[leader]

        def body() -> bytes:
            return peers_etcd.put_body(next_name("etcd"), "v" * 16)

        for _ in range(repeats):
            for clients in (1, CONCURRENCY):
                board.record(
                    http_posts(
                        f"etcd put, {clients}", port, clients, seconds, path="/v3/kv/put", body=body
                    )
                )
        if trials:
            print(f"  -- failover, {trials} trials")
            failover_trials(
                "etcd",
                trials,
                wait_leader=cluster.wait_leader,
                kill=cluster.kill,
                restart=cluster.start_member,
                write=lambda i: cluster.put(i, next_name("failover"), timeout=1.0),
                settle=lambda: None,
                board=board,
            )
    finally:
        cluster.stop()


def run_pysyncobj(tmp: Path, seconds: float, repeats: int, board: Board) -> None:
    cluster = peers_pysyncobj.PySyncObjCluster(tmp)
    cluster.start()
    try:
        leader = cluster.wait_leader()
        print(
            f"\n== PySyncObj {cluster.version(leader)}: 3 nodes, journal file (never fsynced), "
            "replicated dict, callback API inside the leader's process"
        )
        for _ in range(repeats):
            for callers in (1, CONCURRENCY):
                load = cluster.load(leader, callers, seconds)
                board.record(
                    Result(f"PySyncObj set, {callers}", load.elapsed, load.latencies, load.errors)
                )
    finally:
        cluster.stop()


def run_dkron(tmp: Path, seconds: float, repeats: int, trials: int, board: Board) -> None:
    print(
        "\n== dkron-trio: 3 servers (SQLite synchronous=FULL), writes on the leader: "
        "HTTP POST /v1/jobs, RPC apply(SetJob) and RPC apply(SetCursor)"
    )
    cluster = trio_cluster.TrioCluster(tmp)
    cluster.start()
    try:
        leader = cluster.wait_leader()
        http_port, rpc_port = cluster.http_ports[leader], cluster.rpc_ports[leader]

        def body() -> bytes:
            return api.job_body(next_name("http"))

        def measured(name: str, load: Callable[[], Result]) -> None:
            servers, client = cluster.cpu_seconds(), _own_cpu()
            board.record(load())
            after = cluster.cpu_seconds()
            board.record_cpu(
                name,
                leader,
                [b - a for a, b in zip(servers, after, strict=True)],
                _own_cpu() - client,
            )

        for _ in range(repeats):
            for clients in (1, CONCURRENCY):
                name = f"dkron-trio HTTP create job, {clients}"
                measured(
                    name,
                    functools.partial(
                        http_posts, name, http_port, clients, seconds, path="/v1/jobs", body=body
                    ),
                )
            for label, load in (
                ("SetJob", rpc_load.rpc_applies),
                ("SetCursor", rpc_load.rpc_cursor_applies),
            ):
                for callers in (1, CONCURRENCY):
                    name = f"dkron-trio RPC apply {label}, {callers}"
                    measured(
                        name,
                        functools.partial(load, name, rpc_port, callers, seconds, rpc_names),
                    )
        check_replicated(cluster, leader, board)
        if trials:
            print(f"  -- failover, {trials} trials")
            failover_trials(
                "dkron-trio",
                trials,
                wait_leader=cluster.wait_leader,
                kill=cluster.kill,
                restart=cluster.start_node,
                write=lambda i: cluster.create_job(
                    i, api.job_body(next_name("failover")), timeout=1.0
                ),
                settle=cluster.wait_caught_up,
                board=board,
            )
    finally:
        cluster.stop()


def _own_cpu() -> float:
    """User + system CPU seconds of this process (the load clients run in it)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def check_replicated(cluster: trio_cluster.TrioCluster, leader: int, board: Board) -> None:
    """Every create acknowledged above must be in each follower's store: count the jobs
    (the SetCursor loads create one job per proposer, untimed: at least as many again)."""
    acknowledged = sum(
        len(r.latencies)
        for name, runs in board.runs.items()
        if name.startswith("dkron") and "SetCursor" not in name
        for r in runs
    )
    for index in (i for i in range(3) if i != leader):
        deadline = time.monotonic() + 30
        count = cluster.job_count(index)
        while (count is None or count < acknowledged) and time.monotonic() < deadline:
            time.sleep(0.1)
            count = cluster.job_count(index)
        verdict_text = "ok" if count is not None and count >= acknowledged else "MISSING WRITES"
        print(
            f"  follower s{index} holds {count} jobs; {acknowledged} creates acknowledged "
            f"to the timed clients: {verdict_text}"
        )
        if verdict_text != "ok":
            board.missing.append(f"dkron-trio: follower s{index} lacks acknowledged writes")


# ---- summary ------------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def summarise(board: Board) -> None:
    print("\n== summary (median of repeats; latencies pooled over repeats)")
    for name in board.runs:
        lat = board.pooled(name)
        median = board.rate(name) or 0.0
        print(
            f"  {name:<46} {median:>8,.0f} /s  p50 {pct(lat, 0.5) * 1e3:7.2f} ms  "
            f"p99 {pct(lat, 0.99) * 1e3:8.2f} ms  repeats "
            + ", ".join(f"{r.rate:,.0f}" for r in board.runs[name])
        )

    for name, totals in board.cpu.items():
        print(
            f"  {name:<46} CPU ms per commit, all processes: median "
            f"{statistics.median(totals):.2f}, repeats " + ", ".join(f"{t:.2f}" for t in totals)
        )

    def ratio(ours: str, theirs: str) -> float | None:
        a, b = board.rate(ours), board.rate(theirs)
        return None if a is None or not b else a / b

    print("\n== ratios and targets")
    pairs = (
        ("bare Quart-Trio + hypercorn", "trivial server", None),
        ("dkron-trio HTTP create job", "bare Quart-Trio + hypercorn", None),
        ("dkron-trio RPC apply SetJob", "RPC server answering at once", None),
        ("dkron-trio RPC apply SetCursor", "RPC server answering at once", None),
        ("dkron-trio HTTP create job", "etcd put", 0.5),
        ("dkron-trio RPC apply SetJob", "etcd put", 0.5),
        ("dkron-trio RPC apply SetCursor", "etcd put", 0.5),
        ("dkron-trio HTTP create job", "PySyncObj set", 1.0),
        ("dkron-trio RPC apply SetJob", "PySyncObj set", 1.0),
        ("dkron-trio RPC apply SetCursor", "PySyncObj set", 1.0),
    )
    for ours, theirs, target in pairs:
        for n in (1, CONCURRENCY):
            r = ratio(f"{ours}, {n}", f"{theirs}, {n}")
            if r is None:
                continue
            text = f"  {ours}, {n} / {theirs}, {n}: {r:.2f}x"
            if target is not None and n == CONCURRENCY:
                text += f"   (target >= {target:g}x: {verdict(r >= target)})"
            print(text)
    for path in (
        "dkron-trio HTTP create job",
        "dkron-trio RPC apply SetJob",
        "dkron-trio RPC apply SetCursor",
    ):
        rate = board.rate(f"{path}, {CONCURRENCY}")
        if rate is not None:
            print(
                f"  {path}, {CONCURRENCY}: {rate:,.0f} commits/s "
                f"(target >= 1,000: {verdict(rate >= 1000)})"
            )
    for label, times in board.failover.items():
        if not times:
            continue
        p50, p99 = pct(times, 0.5), pct(times, 0.99)
        text = f"  {label} failover p50 {p50:.3f} s, p99 {p99:.3f} s ({len(times)} trials)"
        if label == "dkron-trio":
            text += (
                f"   (targets p50 <= 1.5 s: {verdict(p50 <= 1.5)}, p99 <= 3 s: {verdict(p99 <= 3)})"
            )
        print(text)
    for note in board.missing:
        print(f"  not measured: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per measurement")
    parser.add_argument("--seconds", type=float, help="per measurement (default 3, quick 2)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--trials", type=int, default=10, help="failover trials per system")
    parser.add_argument(
        "--skip", default="", help=f"comma-separated, of {', '.join(SYSTEMS)} (ceilings always run)"
    )
    args = parser.parse_args()
    skip = {s for s in args.skip.split(",") if s}
    if unknown := skip - set(SYSTEMS):
        parser.error(f"--skip: unknown {', '.join(sorted(unknown))}; choose from {SYSTEMS}")
    seconds = args.seconds or (2.0 if args.quick else 3.0)
    trials = 0 if "failover" in skip else args.trials
    print(api.machine())
    print(
        f"{seconds:g} s per measurement, {args.repeats} repeats, {CONCURRENCY} concurrent "
        f"proposers, {trials} failover trials; HTTP client: threads with keep-alive "
        "http.client connections; RPC client: trio tasks on one dkron_trio Peer connection"
    )
    board = Board()
    with tempfile.TemporaryDirectory(prefix="bench-raft-") as tmp:
        tmp_dir = Path(tmp)
        run_ceilings(tmp_dir, seconds, args.repeats, board)
        steps: list[tuple[str, Callable[[Path], None]]] = [
            ("etcd", lambda d: run_etcd(d, seconds, args.repeats, trials, board)),
            ("pysyncobj", lambda d: run_pysyncobj(d, seconds, args.repeats, board)),
            ("dkron", lambda d: run_dkron(d, seconds, args.repeats, trials, board)),
        ]
        for name, step in steps:
            if name in skip:
                board.missing.append(f"{name}: skipped (--skip)")
                continue
            directory = tmp_dir / name
            directory.mkdir()
            try:
                step(directory)
            except (RuntimeError, AssertionError, OSError) as exc:
                print(f"  {name}: could not run: {exc}")
                board.missing.append(f"{name}: {str(exc).splitlines()[0]}")
    summarise(board)


if __name__ == "__main__":
    main()
