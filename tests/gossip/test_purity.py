"""The gossip core modules are pure (DESIGN.md §2): no IO, clock, randomness or logging."""

import ast
from pathlib import Path

import pytest

GOSSIP = Path(__file__).resolve().parents[2] / "dkron_trio" / "gossip"
PURE = ["swim*.py", "codec.py", "messages.py", "config.py"]
FORBIDDEN = {"trio", "time", "random", "socket", "sqlite3", "logging", "os", "threading", "asyncio"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


CORES = sorted(p for pattern in PURE for p in GOSSIP.glob(pattern))


def test_core_modules_are_found() -> None:
    assert {"swim.py", "swim_suspicion.py", "swim_broadcast.py", "codec.py"} <= {
        p.name for p in CORES
    }


@pytest.mark.parametrize("path", CORES, ids=lambda p: p.name)
def test_gossip_core_is_pure(path: Path) -> None:
    bad = _imports(path) & FORBIDDEN
    assert not bad, f"{path.name} imports {sorted(bad)}"
    own = {m for m in _imports(path) if m == "dkron_trio"}
    if own:
        tree = ast.parse(path.read_text())
        modules = {
            n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
        }
        assert not {"dkron_trio.gossip.udp", "dkron_trio.gossip.keyring"} & modules
