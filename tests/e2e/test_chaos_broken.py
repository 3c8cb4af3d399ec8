"""The chaos harness finds bugs: against a build broken on purpose (the test-only switch of
`dkron_trio.chaos.breakage`) a short run must fail and name the broken promise."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dkron_trio.chaos.breakage import ENV, Break

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(sys.platform != "linux", reason="needs 127.0.0.0/8 on loopback")
def test_runs_dispatched_without_their_plan_are_caught(tmp_path: Path) -> None:
    """Without the committed plan, the leader after a whole-cluster crash replans ticks
    that already ran: the harness must report them as duplicates and exit 1."""
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "chaos.py"),
            "--seed",
            "5",
            "--rounds",
            "2",
            "--duration",
            "120",
            "--faults",
            "crash-all",
            "--quiet",
            "1,2",
            "--crash-hold",
            "0.2,0.5",
            "--root",
            str(tmp_path / "run"),
            "--json",
            str(figures),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
        env={**os.environ, ENV: Break.DISPATCH_UNPLANNED.value},
    )
    output = result.stdout[-6000:] + result.stderr[-6000:]
    assert result.returncode == 1, output
    report = json.loads(figures.read_text())
    assert report["faults"] == {"crash-all": 2}, output
    assert report["duplicate_ticks"] > 0, output
    assert any(v.startswith("duplicate tick") for v in report["violations"]), output
    assert "replay with --seed 5" in result.stdout, output
