"""Schedule benchmark: first next-fire time of 100,000 jobs, parse included, against croniter.

Usage: python scripts/bench/schedule.py [--jobs 100000] [--repeats 3] [--sample 2000]

Workloads (generated before timing, same seed in every repeat):
  distinct  every schedule string is different: random 6-field cron lines (80%), 5-field
            crontab lines (8%), `@every` with distinct durations (10%) and descriptors (2%;
            only 8 x 40 zones exist, so those pairs repeat), over 40 timezones.
  fleet     a realistic fleet: 80% of jobs use one of ~150 common specs (Zipf-weighted),
            20% are distinct random lines; 60% of jobs in UTC, the rest over 40 zones.
Each timed repeat runs in a fresh process, so no memo (field tokens, parsed specs, zone
transitions, calendar) carries over: these are cold figures. A second, warm pass in the
same process is printed next to each. Per-job latency (p50/p99/max) comes from separate
fresh processes that time every job on its own.

croniter (the peer): in the same process right after each timed repeat (so under the
same load), 2,000 jobs of that workload that croniter can express (cron lines and its
descriptors; it has no `@every`), `croniter(spec, now in the zone,
second_at_beginning=True).get_next(datetime)`; its time is extrapolated to 100,000 and
the ratio to our cold figure printed.
"""

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from croniter import croniter

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dkron_trio.durations import format_go_duration
from dkron_trio.schedule import parse_schedule

ZONES = [
    "", "UTC", "Europe/Berlin", "Europe/London", "Europe/Paris", "Europe/Madrid",
    "Europe/Moscow", "Europe/Istanbul", "Europe/Kyiv", "Africa/Cairo", "Africa/Lagos",
    "Africa/Johannesburg", "Asia/Tokyo", "Asia/Shanghai", "Asia/Kolkata", "Asia/Dubai",
    "Asia/Singapore", "Asia/Jakarta", "Asia/Tehran", "Asia/Kathmandu", "Asia/Seoul",
    "Australia/Sydney", "Australia/Lord_Howe", "Australia/Adelaide", "Pacific/Auckland",
    "Pacific/Chatham", "Pacific/Apia", "Pacific/Honolulu", "America/New_York",
    "America/Chicago", "America/Denver", "America/Los_Angeles", "America/Sao_Paulo",
    "America/Mexico_City", "America/St_Johns", "America/Havana", "America/Santiago",
    "America/Bogota", "Antarctica/Troll", "Atlantic/Azores",
]  # fmt: skip
DESCRIPTORS = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
               "@hourly", "@minutely"]  # fmt: skip
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
NOW = datetime(2026, 3, 28, 21, 17, 3, 250_000, tzinfo=UTC)  # a DST weekend in Europe

Job = tuple[str, str, datetime]  # spec, timezone, anchor


def _token(rng: random.Random, lo: int, hi: int, star: float) -> str:
    r = rng.random()
    if r < star:
        return "*"
    r = rng.random()
    if r < 0.40:
        return str(rng.randint(lo, hi))
    if r < 0.60:
        return f"*/{rng.choice([2, 3, 4, 5, 6, 10, 12, 15, 20, 30])}"
    if r < 0.75:
        a = rng.randint(lo, hi)
        return f"{a}-{rng.randint(a, hi)}"
    if r < 0.90:
        return ",".join(str(v) for v in sorted(rng.sample(range(lo, hi + 1), rng.randint(2, 3))))
    a = rng.randint(lo, hi)
    return f"{a}-{rng.randint(a, hi)}/{rng.randint(2, 5)}"


def _cron_line(rng: random.Random) -> str:
    sec = "0" if rng.random() < 0.6 else _token(rng, 0, 59, 0.1)
    minute = _token(rng, 0, 59, 0.15)
    hour = _token(rng, 0, 23, 0.35)
    dom = rng.choice(["*", "*", "*", "?", _token(rng, 1, 28, 0.0)])
    month = rng.choice(["*", "*", "*", "*", _token(rng, 1, 12, 0.0), rng.choice(MONTHS)])
    dow = rng.choice(
        ["*", "*", "?", "1-5", "MON-FRI", "0,6", rng.choice(DAYS), _token(rng, 0, 6, 0)]
    )
    return f"{sec} {minute} {hour} {dom} {month} {dow}"


def _anchor(rng: random.Random) -> datetime:
    return NOW - timedelta(seconds=rng.randrange(86400 * 365))


def distinct_jobs(n: int, seed: int) -> list[Job]:
    rng = random.Random(seed)
    seen: set[str] = set()
    jobs: list[Job] = []
    every = 0
    while len(jobs) < n:
        r = rng.random()
        if r < 0.02:
            spec = rng.choice(DESCRIPTORS)
            jobs.append((spec, rng.choice(ZONES), _anchor(rng)))
            continue
        if r < 0.12:
            every += 1
            spec = "@every " + format_go_duration(timedelta(seconds=every * 7))
        elif r < 0.20:
            spec = " ".join(_cron_line(rng).split()[1:])
        else:
            spec = _cron_line(rng)
        if spec in seen:  # (days stay <= 28, so every line is valid)
            continue
        seen.add(spec)
        jobs.append((spec, rng.choice(ZONES), _anchor(rng)))
    return jobs


COMMON = [
    *DESCRIPTORS,
    "@every 10s", "@every 30s", "@every 1m", "@every 5m", "@every 10m", "@every 15m",
    "@every 30m", "@every 1h", "@every 2h", "@every 6h", "@every 12h", "@every 24h",
    "0 * * * * *", "0 */5 * * * *", "0 */10 * * * *", "0 */15 * * * *", "0 */30 * * * *",
    "0 0 * * * *", "0 30 * * * *", "0 0 */2 * * *", "0 0 */6 * * *", "0 0 */12 * * *",
    "0 0 0 * * *", "0 0 1 * * *", "0 0 2 * * *", "0 30 2 * * *", "0 0 3 * * *",
    "0 0 6 * * *", "0 0 8 * * *", "0 0 9 * * *", "0 0 12 * * *", "0 0 18 * * *",
    "0 0 9 * * 1-5", "0 0 9 * * MON-FRI", "0 30 8 * * 1-5", "0 0 17 * * 1-5",
    "0 */15 9-17 * * 1-5", "0 0 0 * * 0", "0 0 0 * * 1", "0 0 0 1 * *", "0 0 0 15 * *",
    "0 0 0 1 1 *", "0 0 0 1 */3 *", "*/5 * * * *", "*/10 * * * *", "0 * * * *",
    "0 0 * * *", "30 2 * * *", "0 9 * * 1-5", "0 0 * * 0", "0 0 1 * *", "15 3 * * *",
]  # fmt: skip


def fleet_jobs(n: int, seed: int) -> list[Job]:
    rng = random.Random(seed)
    pool = COMMON + [f"0 {m} {h} * * *" for m in (0, 15, 30, 45) for h in range(24)]
    weights = [1 / (i + 1) for i in range(len(pool))]
    random_lines = [j[0] for j in distinct_jobs(n // 5, seed + 1)]
    jobs: list[Job] = []
    for i in range(n):
        spec = random_lines[i // 5] if i % 5 == 4 else rng.choices(pool, weights)[0]
        tz = "" if rng.random() < 0.6 else rng.choice(ZONES)
        jobs.append((spec, tz, _anchor(rng)))
    rng.shuffle(jobs)
    return jobs


def _run_all(jobs: list[Job]) -> list[datetime | None]:
    return [
        parse_schedule(spec, timezone=tz, job_name="job", anchor=anchor).next_after(NOW)
        for spec, tz, anchor in jobs
    ]


def _croniter_sample(jobs: list[Job], sample: int) -> tuple[float, float]:
    """croniter's wall and cpu seconds for `sample` of the cron-form jobs."""
    crons = [j for j in jobs if not j[0].startswith(("@every", "@minutely"))]
    picked = random.Random(3).sample(crons, sample)
    w0, c0 = time.perf_counter(), time.process_time()
    for spec, tz, _ in picked:
        start = NOW.astimezone(ZoneInfo(tz or "UTC"))
        croniter(spec, start, second_at_beginning=len(spec.split()) == 6).get_next(datetime)
    return time.perf_counter() - w0, time.process_time() - c0


def worker(mode: str, workload: str, n: int, sample: int) -> None:
    """One fresh process: print a line of figures (parsed by the parent)."""
    jobs = distinct_jobs(n, 7) if workload == "distinct" else fleet_jobs(n, 11)
    if mode == "total":
        # ours cold, ours warm, then croniter on a sample right after (same load)
        for _ in range(2):
            w0, c0 = time.perf_counter(), time.process_time()
            _run_all(jobs)
            print(f"{time.perf_counter() - w0:.4f} {time.process_time() - c0:.4f}", end=" ")
        print("{:.4f} {:.4f}".format(*_croniter_sample(jobs, sample)))
    else:
        lat = []
        for spec, tz, anchor in jobs:
            t0 = time.perf_counter_ns()
            parse_schedule(spec, timezone=tz, job_name="job", anchor=anchor).next_after(NOW)
            lat.append(time.perf_counter_ns() - t0)
        print(" ".join(str(v) for v in lat))


def _spawn(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", *args], check=True, capture_output=True, text=True
    )
    return out.stdout


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, workload, n, sample = args.worker
        worker(mode, workload, int(n), int(sample))
        return
    n = args.jobs
    print(
        f"machine: nproc={os.cpu_count()} python={platform.python_version()} "
        f"{platform.machine()} {platform.platform()}; load average at start "
        f"{os.getloadavg()[0]:.2f} (the machine is shared: compare the ratio, and croniter's "
        "figure with its 209-214 µs/spec measured here when quiet, see BENCHMARKING.md)"
    )
    print(f"jobs={n:,} repeats={args.repeats} now={NOW.isoformat()}")
    k = args.sample
    for workload in ("distinct", "fleet"):
        print(f"\n== {workload}: parse + first next_after for {n:,} jobs, fresh process each ==")
        colds = []
        for r in range(args.repeats):
            figures = _spawn("total", workload, str(n), str(k)).split()
            cw, cc, ww, wc, kw, kc = (float(x) for x in figures)
            colds.append(cw)
            extrapolated = kw / k * n
            print(
                f"  repeat {r + 1}: cold {cw:.3f} s wall, {cc:.3f} s cpu "
                f"({cw / n * 1e6:.2f} µs/job); warm second pass {ww:.3f} s wall, {wc:.3f} s cpu\n"
                f"            croniter right after, {k:,} of these jobs (cron forms): "
                f"{kw / k * 1e6:.0f} µs/job wall ({kc / k * 1e6:.0f} cpu) -> {extrapolated:.1f} s "
                f"for {n:,}; croniter / ours cold = {extrapolated / cw:.1f}x"
            )
        print(f"  cold median {statistics.median(colds):.3f} s wall  (target <= 1 s)")
        for r in range(2):
            lat = [int(v) / 1000 for v in _spawn("latency", workload, str(n), "0").split()]
            print(
                f"  per-job latency, cold, run {r + 1} (µs): p50 {_pct(lat, 0.5):.1f}  "
                f"p99 {_pct(lat, 0.99):.1f}  max {max(lat):.1f}  "
                "(max: a full GC pass or a zone's first use)"
            )


if __name__ == "__main__":
    main()
