"""Fuzz the Raft core in the deterministic cluster simulator with random fault schedules.

    python fuzz/raft_sim.py                    # random seeds until Ctrl-C
    python fuzz/raft_sim.py --iterations 500   # then stop
    python fuzz/raft_sim.py --seed 1234        # replay one seed, bit for bit
    python fuzz/raft_sim.py --schedule '{...}' # replay a schedule a failing test printed

Each failure prints its seed and the command that replays it.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from dkron_trio.sim.faults import FaultSchedule, random_schedule
from dkron_trio.sim.raft_cluster import RunReport, replay_command, run_schedule


def schedule_for_seed(seed: int) -> FaultSchedule:
    return random_schedule(random.Random(seed), seed)


def run_one(schedule: FaultSchedule) -> tuple[RunReport | None, str]:
    """Run a schedule; (report, "") on success, (None, what broke) on failure."""
    try:
        return run_schedule(schedule, random.Random(schedule.seed)), ""
    except Exception as e:  # every failure, Raft's own InvariantViolated included
        return None, f"{type(e).__name__}: {e}"


def describe(report: RunReport) -> str:
    return (
        f"trace {report.trace_hash} events {report.events} ops {report.operations} "
        f"ok {report.completed_ok} term {report.max_term} committed {report.max_chosen} "
        f"crashes {report.crashes} ({report.lossy_crashes} lost unsynced writes) snapshots "
        f"{report.snapshots_installed} conf changes {report.conf_changes_applied} transfers "
        f"{report.transfers} recovered after {report.recovered_after_ms} ms"
    )


def replay(schedule: FaultSchedule, replay_hint: str) -> int:
    report, failure = run_one(schedule)
    if report is None:
        print(f"FAIL seed {schedule.seed}: {failure}")
        print(f"replay: {replay_hint}")
        return 1
    print(f"ok seed {schedule.seed}: {describe(report)}")
    return 0


def fuzz(iterations: int | None, start: int | None) -> int:
    source = random.SystemRandom()
    seed = start
    done = failures = 0
    began = time.monotonic()
    try:
        while iterations is None or done < iterations:
            current = source.randrange(2**63) if seed is None else seed
            schedule = schedule_for_seed(current)
            report, failure = run_one(schedule)
            done += 1
            if report is None:
                failures += 1
                print(f"FAIL seed {current}: {failure}", flush=True)
                print(f"replay: python fuzz/raft_sim.py --seed {current}", flush=True)
            elif done % 50 == 0:
                rate = done / (time.monotonic() - began)
                print(f"{done} runs, {failures} failures, {rate:.1f} runs/s", flush=True)
            if seed is not None:
                seed += 1
    except KeyboardInterrupt:
        pass
    print(f"{done} runs, {failures} failures in {time.monotonic() - began:.0f} s")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, help="stop after this many runs")
    parser.add_argument("--start", type=int, help="sequential seeds from here (default random)")
    parser.add_argument("--seed", type=int, help="replay one seed and print its report")
    parser.add_argument("--schedule", help="replay an encoded schedule (as a test printed it)")
    args = parser.parse_args(argv)
    if args.schedule is not None:
        schedule = FaultSchedule.decode(args.schedule)
        return replay(schedule, replay_command(schedule))
    if args.seed is not None:
        return replay(schedule_for_seed(args.seed), f"python fuzz/raft_sim.py --seed {args.seed}")
    return fuzz(args.iterations, args.start)


if __name__ == "__main__":
    sys.exit(main())
