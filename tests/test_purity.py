"""Pure cores never import IO, time or randomness (DESIGN.md §2)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "dkron_trio"
FORBIDDEN = {"trio", "time", "random", "socket", "sqlite3", "logging", "os", "threading", "asyncio"}
SHELLS = {
    "scheduler.py",
    "raft/node.py",
    "raft/sqlite_storage.py",
    "raft/transport.py",
    "gossip/udp.py",
    "gossip/keyring.py",
    "gossip/service.py",
}
CORES = sorted(
    rel
    for pattern in (
        "durations.py",
        "schedule*.py",
        "planner.py",
        "job.py",
        "execution.py",
        "targets.py",
        "run_checks.py",
        "acl.py",
        "cluster/wire.py",
        "dispatch/wire.py",
        "dispatch/job_cache.py",
        "backends/dynamodb_lease.py",
        "executors/base.py",
        "executors/config.py",
        "notify/config.py",
        "notify/message.py",
        "notify/targets.py",
        "notify/template.py",
        "raft/*.py",
        "gossip/*.py",
        "rpc/framing.py",
        "rpc/config.py",
        "rpc/counters.py",
    )
    for rel in (str(p.relative_to(ROOT)) for p in ROOT.glob(pattern))
    if rel not in SHELLS
)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_cores_are_found() -> None:
    assert {"planner.py", "schedule.py", "raft/core.py", "gossip/swim.py"} <= set(CORES)


@pytest.mark.parametrize("rel", CORES)
def test_core_is_pure(rel: str) -> None:
    path = ROOT / rel
    assert not (_imports(path) & FORBIDDEN), f"{rel} imports {_imports(path) & FORBIDDEN}"
