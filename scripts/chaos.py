"""Chaos run: a real dkron-trio cluster (servers + agents, real processes on 127.0.0.1) under
kill -9 and restart, SIGSTOP/SIGCONT pauses, whole-cluster crashes and RPC partitions, while
clients create, update, delete and read jobs and jobs tick every second on the agents.

Usage: python scripts/chaos.py [--seed N] [--duration 120] [--servers 3] [--agents 2]
                               [--clients 4] [--keys 8]
                               [--rounds N] [--faults kill,pause,crash-all,partition] [--concurrent]
                               [--quiet LOW,HIGH] [--hold LOW,HIGH] [--crash-hold LOW,HIGH]
                               [--root DIR] [--json FILE]

At the end it checks that the job-store history is linearizable, that no acknowledged write
is lost (final state read with ?consistent through the leader), that no (job, scheduled
time, attempt) ran twice and every tick ran or was recorded as missed, and that after every
heal a leader was agreed and a scheduled run finished within --recovery-bound. It prints a
summary table and exits 1 on any violation, printing the seed that replays the schedule.
Partitions go through a TCP proxy in front of every node's RPC port; gossip (UDP) is not
proxied, so a partitioned node still looks alive to the failure detector.
"""

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dkron_trio.chaos.faults import FaultKind  # noqa: E402
from dkron_trio.chaos.runner import ChaosConfig, run_chaos  # noqa: E402


def _kinds(text: str) -> tuple[FaultKind, ...]:
    try:
        return tuple(FaultKind(k.strip()) for k in text.split(",") if k.strip())
    except ValueError as exc:
        choices = ", ".join(k.value for k in FaultKind)
        raise argparse.ArgumentTypeError(f"{exc} (choose from {choices})") from None


def _range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LOW,HIGH seconds") from None
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= LOW <= HIGH")
    return low, high


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="nemesis seed (default: random)")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of faults")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="stop after this many rounds (every fault kind once in each); --duration caps it",
    )
    parser.add_argument("--servers", type=int, default=3)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument(
        "--keys", type=int, default=8, help="job names the clients write (one register each)"
    )
    parser.add_argument(
        "--faults", type=_kinds, default=tuple(FaultKind), help="comma-separated fault kinds"
    )
    parser.add_argument(
        "--quiet", type=_range, default=(1.0, 3.0), help="healthy seconds before each step"
    )
    parser.add_argument("--hold", type=_range, default=(1.0, 4.0), help="seconds a fault lasts")
    parser.add_argument(
        "--crash-hold", type=_range, default=(1.0, 3.0), help="seconds a whole-cluster crash lasts"
    )
    parser.add_argument(
        "--concurrent",
        action="store_true",
        help="kill, pause and partition at once on disjoint nodes (a minority of the servers)",
    )
    parser.add_argument("--recovery-bound", type=float, default=30.0, help="seconds")
    parser.add_argument("--root", type=Path, default=None, help="data and logs (kept)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    root = args.root or Path(tempfile.mkdtemp(prefix="dkron-chaos-"))
    print(f"[chaos] seed {seed}, data and logs in {root}", flush=True)
    config = ChaosConfig(
        root=root,
        seed=seed,
        duration=args.duration,
        servers=args.servers,
        agents=args.agents,
        kinds=args.faults,
        clients=args.clients,
        keys=args.keys,
        recovery_bound=args.recovery_bound,
        quiet=args.quiet,
        hold=args.hold,
        crash_hold=args.crash_hold,
        concurrent=args.concurrent,
        rounds=args.rounds,
    )
    report = trio.run(run_chaos, config)
    print(report.table(), flush=True)
    if args.json is not None:
        command = ["python", "scripts/chaos.py", *(argv if argv is not None else sys.argv[1:])]
        figures = {"command": " ".join(command), **report.to_json()}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if not report.ok:
        print(f"[chaos] FAILED: {len(report.violations)} violations; replay with --seed {seed}")
        return 1
    print(f"[chaos] passed (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
