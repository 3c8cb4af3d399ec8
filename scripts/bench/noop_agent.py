"""``dkron-trio`` with a no-op executor ``noop`` registered: the launcher cluster_runs.py
starts its servers and agents with, so runs cost no process spawn. The executor's output is
the wall-clock time it ran at (nanoseconds since the epoch): the benchmark measures start
lateness from it, on the node that ran it, not from the recorded start."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dkron_trio.cli import main
from dkron_trio.executors.base import ExecutionRequest, ExecutionResult, OutputCallback
from dkron_trio.executors.registry import register_executor


class NoopExecutor:
    async def run(self, req: ExecutionRequest, on_output: OutputCallback) -> ExecutionResult:
        return ExecutionResult(True, str(time.time_ns()), 0, "")


if __name__ == "__main__":
    register_executor("noop", NoopExecutor)
    sys.exit(main(sys.argv[1:]))
