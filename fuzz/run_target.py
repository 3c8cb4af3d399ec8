"""Run one fuzz target under atheris (coverage-guided libFuzzer); run_all.py calls this.

    python fuzz/run_target.py TARGET [libFuzzer flags] CORPUS_DIR...

The dkron_trio modules are instrumented for coverage; the target's seeds must already be in
the first corpus directory (run_all.py writes them). A finding is any exception other than
the decoder's own error: atheris prints it with the input and writes a crash file.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["dkron_trio"]):
    from fuzz_targets import TARGETS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: run_target.py TARGET [libFuzzer flags] CORPUS... ({', '.join(TARGETS)})")
    target = TARGETS[sys.argv[1]]
    print(f"invariant: {target.invariant}", flush=True)
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
