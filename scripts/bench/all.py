"""Run every benchmark of scripts/bench/ with short settings, and the chaos run, then write
docs/BENCHMARKS.md: per benchmark the command, the machine and the figures it printed.

Usage: python scripts/bench/all.py [--only api,chaos,...] [--chaos-rounds 10]
                                   [--chaos-servers 3] [--long-chaos docs/chaos-long.json]
                                   [--out docs/BENCHMARKS.md]

The helpers of raft_cluster.py and cluster_runs.py (peers_etcd, peers_pysyncobj, rpc_load,
trio_cluster, noop_agent) are not benchmarks of their own; any other script that appears in
scripts/bench/ runs with its default settings, so none is left out. A benchmark that fails
is written to the document with its exit code and the end of its output, and makes this
script exit 1. The chaos section is the test suite's short run (the same flags); the long
run (30 minutes, 5 servers: `scripts/chaos.py --json docs/chaos-long.json ...`) takes too
long to repeat here, so its figures are read from that file, with the command that made them.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "scripts" / "bench"

SHORT: dict[str, list[str]] = {
    "raft_core": ["--proposals", "5000", "--repeats", "2"],
    "rpc": ["--calls", "2000", "--oneway", "20000", "--repeats", "2"],
    "gossip": ["--sizes", "10", "50", "--seeds", "5"],
    "schedule": ["--jobs", "20000", "--repeats", "2"],
    "scheduler": ["--seconds", "20", "--jobs", "10000", "--repeats", "1"],
    "api": ["--jobs", "2000", "--seconds", "3", "--repeats", "1"],
    "ui": ["--jobs", "20000", "--repeats", "1"],
    "raft_cluster": ["--quick"],
    "cluster_runs": ["--jobs", "10000", "--seconds", "30"],
}
"""Each benchmark's short settings, in the order they run."""

HELPERS = {"all", "noop_agent", "peers_etcd", "peers_pysyncobj", "rpc_load", "trio_cluster"}
"""Modules of scripts/bench/ that other benchmarks use; not run on their own."""

CHAOS_FLAGS = [
    "--seed",
    "11",
    "--faults",
    "kill,pause,crash-all,partition",
    "--concurrent",
    "--quiet",
    "0.2,0.6",
    "--hold",
    "0.5,1.5",
    "--crash-hold",
    "0.1,0.5",
]
"""The short chaos run of tests/e2e/test_chaos.py (with --rounds)."""


def _benchmarks() -> dict[str, list[str]]:
    """Every benchmark script: the listed short settings, then any other with its defaults."""
    found = sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in HELPERS)
    return {**SHORT, **{name: [] for name in found if name not in SHORT}}


def _machine() -> str:
    cpu = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{platform.system()} {platform.release()}, nproc {os.cpu_count()} "
        f"({cpu or 'CPU model unknown'}), Python {platform.python_version()}"
    )


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.1f} / {five:.1f} / {fifteen:.1f}"


def _run(command: list[str], timeout: float) -> tuple[int, str, float]:
    start = time.monotonic()
    try:
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else ""
        return -1, f"{out}\n(timed out after {timeout:.0f}s)", time.monotonic() - start
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def _section(name: str, command: list[str], code: int, output: str, took: float) -> str:
    shown = " ".join(c if c != sys.executable else "python" for c in command)
    shown = shown.replace(str(ROOT) + "/", "")
    status = "" if code == 0 else f"\n**Failed with exit code {code}.**\n"
    text = output.strip()
    if len(text) > 12000:
        text = "...\n" + text[-12000:]
    return f"## {name}\n\n`{shown}` ({took:.0f} s)\n{status}\n```\n{text}\n```\n"


LONG_CHAOS_TITLE = "## chaos, long run\n\n"
"""The last section: the long run, refreshed alone with --refresh-long-chaos."""


def _long_chaos(path: Path) -> str:
    """The section of the long chaos run, from the figures file it wrote."""
    if not path.exists():
        return f"{LONG_CHAOS_TITLE}Not run yet: no `{path.relative_to(ROOT)}`.\n"
    figures = json.loads(path.read_text())
    rows = [
        ("seed", figures["seed"]),
        ("cluster", f"{figures['servers']} servers + {figures['agents']} agents"),
        ("duration", f"{figures['duration_s']:.0f} s of faults"),
        ("faults injected", ", ".join(f"{k} {v}" for k, v in figures["faults"].items())),
        (
            "operations",
            f"{sum(figures['operations'].values())} "
            f"({', '.join(f'{k} {v}' for k, v in figures['operations'].items())})",
        ),
        ("linearizable", figures["linearizability"]),
        ("lost writes", figures["lost_writes"]),
        ("scheduled runs", figures["scheduled_runs"]),
        ("duplicate ticks", figures["duplicate_ticks"]),
        ("unexplained misses", figures["unexplained_ticks"]),
        (
            "recovery (leader + a scheduled run) p50 / p99 / max",
            f"{figures['recovery_p50_s']} / {figures['recovery_p99_s']} / "
            f"{figures['recovery_max_s']} s",
        ),
        ("leader agreed p50 / p99", f"{figures['leader_p50_s']} / {figures['leader_p99_s']} s"),
        ("violations", len(figures["violations"])),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    violations = "".join(f"\n- VIOLATION: {v}" for v in figures["violations"])
    return (
        f"{LONG_CHAOS_TITLE}"
        f"`{figures['command']}` (figures from `{path.relative_to(ROOT)}`; finished "
        f"{figures['finished_at']} on this machine kind: {figures['machine']})\n\n"
        f"| figure | value |\n| --- | --- |\n{table}\n{violations}\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated names (chaos included)")
    parser.add_argument("--chaos-rounds", type=int, default=10)
    parser.add_argument("--chaos-servers", type=int, default=3)
    parser.add_argument("--long-chaos", type=Path, default=ROOT / "docs" / "chaos-long.json")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    parser.add_argument("--note", default="", help="a sentence for the header (what else ran)")
    parser.add_argument(
        "--refresh-long-chaos",
        action="store_true",
        help="only rewrite the long chaos run's section of --out (it finishes after the rest)",
    )
    args = parser.parse_args()
    if args.refresh_long_chaos:
        text = args.out.read_text()
        head, marker, _ = text.partition(LONG_CHAOS_TITLE)
        if not marker:
            parser.error(f"{args.out}: no {LONG_CHAOS_TITLE.strip()!r} section")
        args.out.write_text(head + _long_chaos(args.long_chaos))
        print(f"[all] refreshed the long chaos run in {args.out}")
        return 0
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    started_at = datetime.now(UTC)
    load_before = _load()
    sections: list[str] = []
    failed = 0
    for name, settings in _benchmarks().items():
        if only and name not in only:
            continue
        command = [sys.executable, str(BENCH / f"{name}.py"), *settings]
        print(f"[all] {name}", flush=True)
        code, output, took = _run(command, timeout=1800)
        failed += code != 0
        sections.append(_section(name, command, code, output, took))
    if not only or "chaos" in only:
        with tempfile.TemporaryDirectory(prefix="dkron-chaos-") as tmp:
            figures = Path(tmp) / "chaos.json"
            command = [
                sys.executable,
                str(ROOT / "scripts" / "chaos.py"),
                *CHAOS_FLAGS,
                "--rounds",
                str(args.chaos_rounds),
                "--duration",
                "1200",
                "--servers",
                str(args.chaos_servers),
                "--root",
                str(Path(tmp) / "run"),
                "--json",
                str(figures),
            ]
            print("[all] chaos", flush=True)
            code, output, took = _run(command, timeout=1800)
            failed += code != 0
            if figures.exists():
                output += "\n\n" + json.dumps(json.loads(figures.read_text()), indent=2)
            sections.append(_section("chaos", command, code, output, took))
        sections.append(_long_chaos(args.long_chaos))
    header = (
        "# Benchmarks\n\n"
        "Regenerated by `python scripts/bench/all.py` (short settings; each script's docstring "
        "says what it measures and how; method in BENCHMARKING.md).\n\n"
        f"Machine: {_machine()}. Run {started_at:%Y-%m-%d %H:%M} to "
        f"{datetime.now(UTC):%H:%M} UTC.\n\n"
        "**This machine is shared and loaded**: other work ran on the same 2 cores during the "
        f"run (load average 1/5/15 min: {load_before} at the start, {_load()} at the end), so "
        "absolute figures swing (30% and more, p99 several times) between runs; the ratios "
        "against a peer measured in the same run are the figures to compare.\n\n"
    )
    if args.note:
        header += f"{args.note}\n\n"
    if only:
        header += f"Partial run (`--only {args.only}`): the other benchmarks are not shown.\n\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(header + "\n".join(sections))
    print(f"[all] wrote {args.out}; {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
