"""Starting a job's process in a process group of its own, tied to the agent's life.

Why not `trio.lowlevel.open_process`: it forks from a worker of trio's thread cache, and Linux
delivers the parent-death signal when the *thread* that forked exits, not the process; the
cached worker idles out after 10 s and every process it started would be killed. So all
forks happen on a few daemon threads that live as long as the agent, and the process is
watched through a pidfd (or a waitid thread where pidfds are missing).

The price of the parent-death signal is `preexec_fn`, which makes Python fork instead of
vfork and run code in the child: a start costs ~10 ms instead of ~2 ms on a busy 2-core box.
"""

import contextlib
import ctypes
import functools
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import attrs
import outcome
import trio

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_PRCTL = _load_prctl()


def _child_setup(agent_pid: int) -> None:
    """Runs in the child between fork and exec: die with the agent, even if it just died.

    Only syscalls through pre-resolved functions: no imports, no locks another thread of the
    agent could have held at fork time.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, _SIGKILL, 0, 0, 0)
    if os.getppid() != agent_pid:
        os._exit(127)


@attrs.define
class _SpawnThreads:
    """Long-lived threads every job process is forked from (see the module docstring).

    More than one, because each waits for its child to reach exec (milliseconds of
    copy-on-write faults in the child), and those waits can overlap.
    """

    _count: int
    _work: "queue.SimpleQueue[Callable[[], None]]" = attrs.field(factory=queue.SimpleQueue)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)
    _threads: list[threading.Thread] = attrs.field(factory=list)

    def submit(self, work: Callable[[], None]) -> None:
        with self._lock:
            while len(self._threads) < self._count:
                thread = threading.Thread(
                    target=self._serve, name=f"dkron-trio-spawner-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        self._work.put(work)

    def _serve(self) -> None:
        while True:
            self._work.get()()


SPAWN_THREADS = 4
"""Forks in flight at once; measured: 4 threads start ~1.5x more processes per second than 1."""

_SPAWN_THREADS = _SpawnThreads(SPAWN_THREADS)


async def _on_spawn_thread(fn: Callable[[], T]) -> T:
    """Run `fn` on a spawn thread. Not cancellable once submitted (a fork takes milliseconds,
    and abandoning it would leak the process); a pending cancel is raised at the next checkpoint."""
    await trio.lowlevel.checkpoint_if_cancelled()
    task = trio.lowlevel.current_task()
    token = trio.lowlevel.current_trio_token()

    def work() -> None:
        result = outcome.capture(fn)
        token.run_sync_soon(trio.lowlevel.reschedule, task, result)

    _SPAWN_THREADS.submit(work)
    result: T = await trio.lowlevel.wait_task_rescheduled(lambda _: trio.lowlevel.Abort.FAILED)
    return result


def _wait_exit_blocking(pid: int) -> None:
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)


@attrs.define
class GroupProcess:
    """A started job process that leads its own process group (pgid == pid).

    `output` reads its stdout and stderr, interleaved; `stdin` writes its standard input.
    """

    _popen: "subprocess.Popen[bytes]"
    output: trio.lowlevel.FdStream
    stdin: trio.lowlevel.FdStream
    _exited: bool = False

    @property
    def pid(self) -> int:
        return self._popen.pid

    async def wait_exited(self) -> None:
        """Return once the leader has exited, *without reaping it*.

        An unreaped leader keeps its pid and so its process group id from being reused,
        which is what makes `signal_group` safe until `reap`.
        """
        if self._exited:
            await trio.lowlevel.checkpoint()
            return
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None:
            await trio.to_thread.run_sync(_wait_exit_blocking, self.pid, abandon_on_cancel=True)
        else:
            pidfd: int = pidfd_open(self.pid)
            try:
                await trio.lowlevel.wait_readable(pidfd)
            finally:
                os.close(pidfd)
        self._exited = True

    def signal_group(self, signum: signal.Signals) -> None:
        """Send `signum` to every process still in the group (a no-op once the group is gone)."""
        if self._popen.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)

    @property
    def returncode(self) -> int | None:
        """The leader's return code once reaped (negative: killed by that signal), else None."""
        return self._popen.returncode

    async def aclose(self) -> None:
        """Close our ends of the pipes and reap the leader if it has exited.

        Stopping the process is the caller's business; one still running is left unreaped.
        """
        with trio.CancelScope(shield=True):
            await self.output.aclose()
            await self.stdin.aclose()
        if self._exited:
            self._popen.wait()


async def spawn_group(
    argv: Sequence[str], *, cwd: str | None, env: Mapping[str, str]
) -> GroupProcess:
    """Start `argv` in a new session and process group, killed if the agent dies.

    Raises OSError (e.g. FileNotFoundError naming the program or the cwd) if it cannot start.
    """
    out_read, out_write = os.pipe()
    in_read, in_write = os.pipe()
    agent_pid = os.getpid()

    def start() -> "subprocess.Popen[bytes]":
        return subprocess.Popen(
            list(argv),
            stdin=in_read,
            stdout=out_write,
            stderr=out_write,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,
            # The parent-death signal has no other route in the stdlib; _child_setup is safe.
            preexec_fn=functools.partial(_child_setup, agent_pid),  # noqa: PLW1509
        )

    try:
        popen = await _on_spawn_thread(start)
    except BaseException:
        os.close(out_read)
        os.close(in_write)
        raise
    finally:
        os.close(out_write)
        os.close(in_read)
    return GroupProcess(popen, trio.lowlevel.FdStream(out_read), trio.lowlevel.FdStream(in_write))
