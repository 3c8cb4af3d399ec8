"""The `shell` executor: runs a command in its own process group and streams its output.

The job is over when its main process exits. Its process group is stopped (SIGTERM, then
SIGKILL after a grace) on timeout, on cancellation, and when processes it left behind keep
its output open past the grace; processes that detached from the output are left alone.
"""

import logging
import math
import os
import signal
from collections.abc import Mapping
from datetime import timedelta

import attrs
import trio

from dkron_trio.durations import format_go_duration
from dkron_trio.executors.base import ExecutionRequest, ExecutionResult, OutputCallback
from dkron_trio.executors.config import (
    KILL_GRACE,
    OUTPUT_LIMIT_BYTES,
    ExecutorConfigError,
    ShellConfig,
    parse_shell_config,
)
from dkron_trio.executors.output import OutputBuffer
from dkron_trio.executors.spawn import GroupProcess, spawn_group

logger = logging.getLogger(__name__)

_READ_CHUNK = 65536
_RESERVED_ENV_PREFIX = "DKRON_"


def job_environment(
    req: ExecutionRequest, cfg: ShellConfig, inherited: Mapping[str, str]
) -> dict[str, str]:
    """The agent's environment, then the job's `env`, then what identifies this attempt.

    Inherited DKRON_* variables (the agent's own settings, such as its gossip key) are not
    passed on: that namespace is the executor's.
    """
    env = {k: v for k, v in inherited.items() if not k.startswith(_RESERVED_ENV_PREFIX)}
    env.update(cfg.env)
    env["ENV_JOB_NAME"] = req.job_name
    env.update(req.identity())
    return env


def _describe_exit(returncode: int) -> str:
    """Go's wording (Dkron's error strings): "exit status 2", "signal: killed"."""
    if returncode >= 0:
        return f"exit status {returncode}"
    name = signal.strsignal(-returncode) or f"signal {-returncode}"
    return f"signal: {name.lower()}"


@attrs.frozen
class ShellExecutor:
    """Runs `shell` jobs. `kill_grace` is both the SIGTERM-to-SIGKILL grace and the output drain."""

    kill_grace: timedelta = KILL_GRACE
    output_limit: int = OUTPUT_LIMIT_BYTES

    async def run(self, req: ExecutionRequest, on_output: OutputCallback) -> ExecutionResult:
        buffer = OutputBuffer(self.output_limit)
        try:
            cfg = parse_shell_config(req.executor_config)
        except ExecutorConfigError as exc:
            return _failed(buffer, f"invalid executor_config: {exc}")
        timeout = req.effective_timeout(cfg.timeout)
        env = job_environment(req, cfg, os.environ)
        try:
            proc = await spawn_group(cfg.argv, cwd=cfg.cwd, env=env)
        except OSError as exc:
            return _failed(buffer, f"cannot start command: {exc.strerror}: {exc.filename!r}")
        try:
            timed_out = await self._supervise(
                req,
                proc,
                payload=cfg.payload,
                limit=math.inf if timeout is None else timeout.total_seconds(),
                buffer=buffer,
                on_output=on_output,
            )
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._stop(proc, settled=None)
            raise
        finally:
            await proc.aclose()
        returncode = proc.returncode
        if timed_out:
            assert timeout is not None
            error = f"timed out after {format_go_duration(timeout)}; process group killed"
        elif returncode is None:
            error = "process did not exit after SIGKILL"
        elif returncode != 0:
            error = _describe_exit(returncode)
        else:
            error = ""
        return ExecutionResult(
            success=not error, output=buffer.text(error), exit_code=returncode, error=error
        )

    async def _supervise(
        self,
        req: ExecutionRequest,
        proc: GroupProcess,
        *,
        payload: bytes,
        limit: float,
        buffer: OutputBuffer,
        on_output: OutputCallback,
    ) -> bool:
        """Stream output and stdin until the leader exits or `limit` seconds pass (True)."""
        grace = self.kill_grace.total_seconds()
        eof = trio.Event()

        async def pump_output() -> None:
            while chunk := await proc.output.receive_some(_READ_CHUNK):
                buffer.append(chunk)
                on_output(chunk)
            eof.set()

        async def feed_stdin() -> None:
            try:
                if payload:
                    await proc.stdin.send_all(payload)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the command exited or closed stdin without reading all of it
            finally:
                await proc.stdin.aclose()

        timed_out = False
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump_output)
            nursery.start_soon(feed_stdin)
            with trio.move_on_after(limit) as deadline:
                await proc.wait_exited()
            if deadline.cancelled_caught:
                timed_out = True
                logger.info("shell job timed out", extra={"job": req.job_name, "pid": proc.pid})
                await self._stop(proc, settled=eof)
            else:
                with trio.move_on_after(grace):
                    await eof.wait()
                if not eof.is_set():
                    logger.info(
                        "shell job left processes holding its output; stopping them",
                        extra={"job": req.job_name, "pid": proc.pid},
                    )
                    await self._stop(proc, settled=eof)
            with trio.move_on_after(grace):
                await eof.wait()
            nursery.cancel_scope.cancel()
        return timed_out

    async def _stop(self, proc: GroupProcess, *, settled: trio.Event | None) -> None:
        """SIGTERM the group; SIGKILL whatever is left once the leader has exited and `settled`
        is set (output closed), or after the grace."""
        grace = self.kill_grace.total_seconds()
        proc.signal_group(signal.SIGTERM)
        with trio.move_on_after(grace):
            await proc.wait_exited()
            if settled is not None:
                await settled.wait()
        proc.signal_group(signal.SIGKILL)
        with trio.move_on_after(grace):
            await proc.wait_exited()


def _failed(buffer: OutputBuffer, error: str) -> ExecutionResult:
    return ExecutionResult(success=False, output=buffer.text(error), exit_code=None, error=error)
