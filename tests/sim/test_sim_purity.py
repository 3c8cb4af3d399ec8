"""The simulator is pure like the cores it drives: no clock, no global randomness, no IO."""

import ast
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parents[2] / "dkron_trio" / "sim"
FORBIDDEN = {"trio", "time", "random", "socket", "sqlite3", "logging", "os", "threading", "asyncio"}


@pytest.mark.parametrize("path", sorted(SIM.glob("*.py")), ids=lambda p: p.name)
def test_sim_module_is_pure(path: Path) -> None:
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, f"{path.name} imports {sorted(imported & FORBIDDEN)}"
