"""Runs ``scripts/chaos.py`` as a process for the chaos tests and reads its JSON figures."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs

ROOT = Path(__file__).resolve().parents[2]


@attrs.frozen
class ChaosRun:
    returncode: int
    report: dict[str, Any]
    stdout: str
    output: str
    """The tail of stdout and stderr, for assertion messages."""


def run_chaos(
    tmp_path: Path, flags: list[str], *, timeout: float, env: dict[str, str] | None = None
) -> ChaosRun:
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "chaos.py"),
            *flags,
            "--root",
            str(tmp_path / "run"),
            "--json",
            str(figures),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    output = result.stdout[-6000:] + result.stderr[-6000:]
    assert figures.exists(), f"exit {result.returncode}, no figures written\n{output}"
    return ChaosRun(result.returncode, json.loads(figures.read_text()), result.stdout, output)
