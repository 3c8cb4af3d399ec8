"""The fuzz targets live in fuzz/, run as scripts; make them importable here too."""

import sys
from pathlib import Path

FUZZ_DIR = str(Path(__file__).resolve().parents[2] / "fuzz")
if FUZZ_DIR not in sys.path:
    sys.path.insert(0, FUZZ_DIR)
