"""The fork server behind `launch.Launcher`: imports dkron_trio once, then forks nodes.

Protocol over its stdin/stdout, one JSON object a line. Asked
``{"argv": [...], "source": "127.0.0.11", "log": "/path"}`` it forks a node and answers
``{"pid": N}``; whenever one of its nodes ends it says ``{"exit": N, "code": C}`` (C
negative for a signal, like subprocess). It reaps its children itself, so a killed node
never lingers as a zombie, and it exits when its stdin closes.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys

import dkron_trio.agent  # noqa: F401  (the point: imported once, before any fork)
from dkron_trio.chaos.launch import run_node


def _say(message: dict[str, int]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _reap() -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _say({"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _fork(request: dict[str, object], wake: tuple[int, int]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in wake:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        argv = request["argv"]
        assert isinstance(argv, list)
        code = run_node([str(a) for a in argv], str(request["source"]), str(request["log"]))
    finally:
        os._exit(code)


def main() -> None:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    stdin = sys.stdin.fileno()
    pending = b""
    while True:
        try:
            ready, _, _ = select.select([stdin, wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            while True:
                try:
                    if not os.read(wake_r, 512):
                        break
                except BlockingIOError:
                    break
            _reap()
        if stdin in ready:
            chunk = os.read(stdin, 65536)
            if not chunk:
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                _say({"pid": _fork(json.loads(line), (wake_r, wake_w))})
            _reap()


if __name__ == "__main__":
    main()
