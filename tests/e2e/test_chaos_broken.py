"""The chaos harness finds bugs: against a build broken on purpose (the test-only switch of
`dkron_trio.chaos.breakage`) a short run must fail and name the broken promise."""

import sys
from pathlib import Path

import pytest

from dkron_trio.chaos.breakage import ENV, Break
from tests.e2e.chaos_run import run_chaos


@pytest.mark.skipif(sys.platform != "linux", reason="needs 127.0.0.0/8 on loopback")
def test_runs_dispatched_without_their_plan_are_caught(tmp_path: Path) -> None:
    """Without the committed plan, the leader after a whole-cluster crash replans ticks
    that already ran: the harness must report them as duplicates and exit 1."""
    run = run_chaos(
        tmp_path,
        [
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
        ],
        timeout=240,
        env={ENV: Break.DISPATCH_UNPLANNED.value},
    )
    assert run.returncode == 1, run.output
    assert run.report["faults"] == {"crash-all": 2}, run.output
    assert run.report["duplicate_ticks"] > 0, run.output
    assert any(v.startswith("duplicate tick") for v in run.report["violations"]), run.output
    assert "replay with --seed 5" in run.stdout, run.output
