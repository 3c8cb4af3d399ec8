"""The shell executor against real processes: output, environment, stdin, process-group kills."""

import base64
import os
import signal
import subprocess
import sys
import tracemalloc
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from dkron_trio.executors.base import ExecutionRequest, ExecutionResult
from dkron_trio.executors.shell import ShellExecutor

GRACE = timedelta(seconds=0.3)
SCHEDULED = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
EXECUTOR = ShellExecutor(kill_grace=GRACE)


def request(job_timeout: timedelta | None = None, **config: str) -> ExecutionRequest:
    return ExecutionRequest(
        job_name="backup",
        execution_id="1714552200000000000-node1",
        scheduled_at=SCHEDULED,
        attempt=2,
        fence=7,
        executor_config=config,
        timeout=job_timeout,
    )


async def run(job_timeout: timedelta | None = None, **config: str) -> ExecutionResult:
    return await EXECUTOR.run(request(job_timeout, **config), lambda _: None)


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_gone(pid: int) -> None:
    """Wait (at most 5 s) for `pid` to exit; a pidfd also works for processes not our children."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        with trio.fail_after(5):
            await trio.lowlevel.wait_readable(pidfd)
    finally:
        os.close(pidfd)


def pid_lines(output: str) -> list[int]:
    return [int(line) for line in output.split() if line.isdigit()]


async def test_success_output_and_exit_code() -> None:
    result = await run(command="echo hello world")
    assert result == ExecutionResult(True, "hello world\n", 0, "")


async def test_failure_puts_the_error_line_first_and_keeps_stderr() -> None:
    result = await run(command="echo out; echo err >&2; exit 3", shell="true")
    assert not result.success
    assert result.exit_code == 3
    assert result.error == "exit status 3"
    assert result.output == "exit status 3\nout\nerr\n"


async def test_killed_by_a_signal() -> None:
    result = await run(command="kill -9 $$", shell="true")
    assert (result.success, result.exit_code, result.error) == (False, -9, "signal: killed")


async def test_without_shell_the_command_is_split_and_executed_directly() -> None:
    result = await run(command="printf '%s|' 'a b' c $HOME")
    assert result.output == "a b|c|$HOME|"


async def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEP_ME", "inherited")
    monkeypatch.setenv("DKRON_ENCRYPT", "agent secret")
    result = await run(command="env", env="A=1,B=two words,DKRON_FENCE=999")
    env = dict(line.split("=", 1) for line in result.output.splitlines())
    assert env["KEEP_ME"] == "inherited"
    assert "DKRON_ENCRYPT" not in env
    assert (env["A"], env["B"]) == ("1", "two words")
    assert env["ENV_JOB_NAME"] == "backup"
    assert env["DKRON_JOB_NAME"] == "backup"
    assert env["DKRON_EXECUTION_ID"] == "1714552200000000000-node1"
    assert env["DKRON_SCHEDULED_AT"] == "2024-05-01T08:30:00Z"
    assert env["DKRON_ATTEMPT"] == "2"
    assert env["DKRON_FENCE"] == "7"


async def test_cwd(tmp_path: Path) -> None:
    result = await run(command="pwd", cwd=str(tmp_path))
    assert result.output.strip() == str(tmp_path.resolve())


async def test_payload_is_written_to_stdin() -> None:
    payload = base64.b64encode(b"line one\nline two\n").decode()
    result = await run(command="cat", payload=payload)
    assert result.output == "line one\nline two\n"


async def test_stdin_is_closed_when_there_is_no_payload() -> None:
    assert (await run(command="cat")).output == ""


async def test_a_payload_the_command_does_not_read_does_not_block() -> None:
    payload = base64.b64encode(b"x" * 1_000_000).decode()
    assert (await run(command="true", payload=payload)).success


async def test_command_that_cannot_start() -> None:
    result = await run(command="/nonexistent/program --flag")
    assert not result.success
    assert result.exit_code is None
    assert "No such file or directory" in result.error
    assert "/nonexistent/program" in result.error
    assert result.output == result.error + "\n"


async def test_missing_cwd(tmp_path: Path) -> None:
    result = await run(command="pwd", cwd=str(tmp_path / "missing"))
    assert not result.success
    assert "missing" in result.error


async def test_invalid_config_fails_naming_the_key() -> None:
    result = await run(command="true", timeout="often")
    assert not result.success
    assert result.error.startswith("invalid executor_config: timeout:")


async def test_huge_output_keeps_the_last_256000_bytes_in_bounded_memory() -> None:
    received = 0

    def count(chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)

    command = "head -c 5000000 /dev/zero | tr '\\0' x; printf END"
    tracemalloc.start()
    try:
        result = await EXECUTOR.run(request(command=command, shell="true"), count)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.success
    assert received == 5_000_003
    assert len(result.output) == 256_000
    assert result.output.endswith("xxxEND")
    assert peak < 2_000_000, f"peak traced memory {peak} bytes"


async def test_timeout_kills_the_whole_group_including_grandchildren() -> None:
    start = trio.current_time()
    result = await run(command="sleep 60 & echo $$ $!; wait", shell="true", timeout="300ms")
    elapsed = trio.current_time() - start
    assert not result.success
    assert result.error.startswith("timed out after")
    assert result.output.startswith(result.error + "\n")
    [leader, grandchild] = pid_lines(result.output)
    assert not Path(f"/proc/{leader}").exists()
    await wait_gone(grandchild)
    assert elapsed < 5


async def test_the_shorter_of_job_and_executor_timeout_applies() -> None:
    result = await run(timedelta(milliseconds=200), command="sleep 60", timeout="1h")
    assert result.error.startswith("timed out after 0.2s")


async def test_processes_ignoring_sigterm_are_killed_after_the_grace() -> None:
    command = "trap '' TERM; sleep 60 & echo $!; wait; wait"
    start = trio.current_time()
    result = await run(command=command, shell="true", timeout="200ms")
    elapsed = trio.current_time() - start
    assert result.exit_code == -signal.SIGKILL
    assert elapsed >= 0.2 + GRACE.total_seconds()
    [grandchild] = pid_lines(result.output)
    await wait_gone(grandchild)


async def test_cancellation_kills_the_group_and_propagates() -> None:
    seen = bytearray()
    started = trio.Event()
    results: list[ExecutionResult] = []

    def collect(chunk: bytes) -> None:
        seen.extend(chunk)
        if b"\n" in seen:
            started.set()

    async def job() -> None:
        req = request(command="sleep 60 & echo $$ $!; wait", shell="true")
        results.append(await EXECUTOR.run(req, collect))

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(job)
            with trio.fail_after(5):
                await started.wait()
            [leader, grandchild] = pid_lines(seen.decode())
            assert alive(grandchild)
            scope.cancel()
    assert scope.cancelled_caught
    assert results == []
    assert not Path(f"/proc/{leader}").exists(), "the leader is reaped, not left a zombie"
    await wait_gone(grandchild)


async def test_output_is_streamed_before_the_process_exits() -> None:
    chunks: list[bytes] = []
    first = trio.Event()
    done = trio.Event()

    def collect(chunk: bytes) -> None:
        chunks.append(chunk)
        first.set()

    async def job() -> None:
        await EXECUTOR.run(request(command="sh -c 'echo first; exec sleep 60'"), collect)
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(job)
        with trio.fail_after(5):
            await first.wait()
        assert chunks == [b"first\n"]
        assert not done.is_set()
        nursery.cancel_scope.cancel()


async def test_leftovers_holding_the_output_are_stopped_after_the_grace() -> None:
    result = await run(command="sleep 60 & echo $!", shell="true")
    assert result.success
    [leftover] = pid_lines(result.output)
    await wait_gone(leftover)


async def test_leftovers_that_detached_from_the_output_are_left_alone() -> None:
    result = await run(command="sleep 60 >/dev/null 2>&1 & echo $!", shell="true")
    assert result.success
    [leftover] = pid_lines(result.output)
    try:
        assert alive(leftover)
    finally:
        os.kill(leftover, signal.SIGKILL)


async def test_works_without_pidfd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    assert (await run(command="echo fallback")).output == "fallback\n"
    result = await run(command="sleep 60", timeout="100ms")
    assert result.error.startswith("timed out")


_AGENT = """
import sys
from datetime import UTC, datetime
import trio
from dkron_trio.executors.base import ExecutionRequest
from dkron_trio.executors.shell import ShellExecutor

def show(chunk):
    sys.stdout.buffer.write(chunk)
    sys.stdout.flush()

config = {"command": "sh -c 'echo $$; exec sleep 60'"}
req = ExecutionRequest("j", "e", datetime.now(UTC), 1, 1, config)
trio.run(ShellExecutor().run, req, show)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux")
async def test_job_processes_die_with_the_agent() -> None:
    agent = await trio.lowlevel.open_process(
        [sys.executable, "-c", _AGENT], stdout=subprocess.PIPE, env=_env_with_repo()
    )
    assert agent.stdout is not None
    line = b""
    try:
        with trio.fail_after(10):
            while not line.endswith(b"\n"):
                line += await agent.stdout.receive_some(100)
        job_pid = int(line)
        assert alive(job_pid)
    finally:
        agent.kill()
        await agent.wait()
        await agent.stdout.aclose()
    await wait_gone(job_pid)


def _env_with_repo() -> Mapping[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
