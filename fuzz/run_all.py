"""Run every fuzz target (fuzz_targets.py) for a bounded time each, one atheris process each.

    python fuzz/run_all.py --minutes 30              # long run: 30 minutes per target
    python fuzz/run_all.py --seconds 30              # what the test suite does
    python fuzz/run_all.py --only schedule --minutes 5 --corpus fuzz/corpus

Prints per target the number of inputs run and the result; exits 1 if any target found a
crash (its input is saved under --artifacts, replay with `python fuzz/run_target.py TARGET
CRASH_FILE`). With --corpus the corpus grows across runs; by default it starts from the
seeds in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
from fuzz_targets import TARGETS

HERE = Path(__file__).resolve().parent
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")


@attrs.frozen
class Outcome:
    target: str
    runs: int
    ok: bool
    log: str


def run_target(name: str, seconds: int, corpus_root: Path, artifacts: Path) -> Outcome:
    corpus = corpus_root / name
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(TARGETS[name].seeds()):
        (corpus / f"seed-{i}").write_bytes(seed)
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        str(HERE / "run_target.py"),
        name,
        f"-max_total_time={seconds}",
        "-timeout=10",
        "-rss_limit_mb=1024",
        "-max_len=8192",
        f"-artifact_prefix={artifacts}/{name}-",
        str(corpus),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=seconds + 120)
    log = proc.stdout + proc.stderr
    found = _DONE.findall(log)
    runs = int(found[-1][0]) if found else 0
    return Outcome(name, runs, proc.returncode == 0, log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="per target")
    length.add_argument("--seconds", type=int, help="per target (default 30)")
    parser.add_argument("--only", action="append", choices=sorted(TARGETS), help="repeatable")
    parser.add_argument("--corpus", type=Path, help="corpus root kept across runs")
    parser.add_argument("--artifacts", type=Path, default=Path("fuzz-findings"))
    parser.add_argument(
        "--parallel", type=int, default=os.cpu_count() or 1, help="targets run at once"
    )
    args = parser.parse_args(argv)
    seconds = round(args.minutes * 60) if args.minutes is not None else args.seconds or 30
    failed = 0
    with tempfile.TemporaryDirectory(prefix="dkron-fuzz-") as tmp:
        root = args.corpus if args.corpus is not None else Path(tmp)
        names = args.only or list(TARGETS)
        with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
            outcomes = pool.map(
                lambda name: run_target(name, seconds, root, args.artifacts.resolve()), names
            )
            done = list(zip(names, outcomes, strict=True))
        for name, outcome in done:
            status = "ok" if outcome.ok else "FAIL"
            print(f"{name}: {status}, {outcome.runs} inputs in {seconds} s", flush=True)
            if not outcome.ok:
                failed += 1
                print(outcome.log[-4000:], flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
