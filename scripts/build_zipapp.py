"""Build ``dkron-trio.pyz``: one file that runs on a machine with only Python 3.11+.

shiv installs the project and its dependencies (wheels, so msgpack's C extension too) into a
zip with a bootstrap; on first start the zip's site-packages is extracted to ``SHIV_ROOT``
(default ``~/.shiv``), which is what lets C extensions load and the UI read its templates and
static files from the package directory. The C extensions are those of the Python that
builds the zipapp; another 3.11+ version still runs it (msgpack, PyYAML and MarkupSafe fall
back to their pure-Python code).

    .venv/bin/python scripts/build_zipapp.py [--output dkron-trio.pyz]
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MSGPACK_EXTENSION = "site-packages/msgpack/_cmsgpack"
"""Path prefix, inside the zip, of msgpack's compiled module (its suffix names the ABI)."""


class BuildError(Exception):
    """The zipapp could not be built or lacks something it must hold."""


def _copy_sources(dest: Path) -> None:
    """Build from a copy, so that the build leaves no build/ or egg-info in the checkout."""
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "dkron_trio",
        dest / "dkron_trio",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )


def build(output: Path, python: str = sys.executable) -> Path:
    """Build the zipapp at ``output`` with ``python``'s shiv and pip; return its path."""
    output = output.resolve()
    with tempfile.TemporaryDirectory(prefix="dkron-trio-zipapp-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        _copy_sources(source)
        command = [
            python,
            "-m",
            "shiv",
            "--console-script",
            "dkron-trio",
            "--python",
            "/usr/bin/env python3",
            "--output-file",
            str(output),
            "--compressed",
            "--reproducible",
            "--only-binary=msgpack",
            str(source),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BuildError(f"shiv failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    with zipfile.ZipFile(output) as archive:
        names = archive.namelist()
    if not any(n.startswith(MSGPACK_EXTENSION) and n.endswith(".so") for n in names):
        raise BuildError(f"{output} lacks msgpack's C extension ({MSGPACK_EXTENSION}*.so)")
    if not any(n.endswith("dkron_trio/http/ui/templates/ui/base.html") for n in names):
        raise BuildError(f"{output} lacks the UI templates")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--output", type=Path, default=ROOT / "dist" / "dkron-trio.pyz")
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    try:
        path = build(args.output)
    except BuildError as exc:
        print(f"build_zipapp: {exc}", file=sys.stderr)
        return 1
    print(f"built {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
