"""Golden transcript tests: each tests/raft/testdata/*.txt file replays commands against a
fresh cluster and compares every output. REWRITE_GOLDEN=1 rewrites the files instead."""

import os
from pathlib import Path

import pytest

from .transcript import Interpreter, parse, render

TESTDATA = Path(__file__).parent / "testdata"
FILES = sorted(TESTDATA.glob("*.txt"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_transcript(path: Path) -> None:
    blocks = parse(path.read_text())
    interpreter = Interpreter()
    results = [(block, interpreter.run(block.command)) for block in blocks]
    if os.environ.get("REWRITE_GOLDEN") == "1":
        path.write_text(render(results))
        return
    for block, actual in results:
        assert list(block.expected) == actual, f"{path.name}: {block.command}"
