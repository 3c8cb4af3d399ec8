"""The fuzz targets (fuzz/fuzz_targets.py): their seeds hold the invariant, and each target
survives a short coverage-guided atheris run (fuzz/run_all.py; longer runs by hand)."""

import subprocess
import sys
from pathlib import Path

import pytest
from fuzz_targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
SECONDS_PER_TARGET = 30
"""The issue's bound per target; the targets run two at a time (run_all.py --parallel)."""
EDGE_INPUTS = [b"", b"\x00", b"\xff" * 64, b"\xdf\xff\xff\xff\xff", b"\x91" * 5000]


def test_seeds_and_edge_inputs_keep_every_invariant() -> None:
    assert set(TARGETS) == {
        "raft_codec",
        "rpc_frames",
        "gossip_codec",
        "cluster_wire",
        "commands",
        "schedule",
    }
    for target in TARGETS.values():
        assert target.invariant
        for data in [*target.seeds(), *EDGE_INPUTS]:
            target.one_input(data)


@pytest.mark.slow
def test_every_target_survives_a_bounded_atheris_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "fuzz" / "run_all.py"),
            "--seconds",
            str(SECONDS_PER_TARGET),
            "--artifacts",
            str(tmp_path / "findings"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in TARGETS:
        assert f"{name}: ok" in proc.stdout
