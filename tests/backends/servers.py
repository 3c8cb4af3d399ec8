"""What the backend launchers share: free ports, the missing-binary rule, stopping by PID."""

import importlib
import importlib.util
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "false", "0")


def require_binary(name: str, package: str) -> str:
    """The binary's path; without it the test skips locally and fails under CI."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not found (Debian package {package}; scripts/test installs it)"
        if under_ci():
            pytest.fail(f"{reason}: required under CI")
        pytest.skip(reason)
    return path


def wait_until(
    ready: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], timeout: float
) -> None:
    """Poll ``ready`` until it holds; fail when the process exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before answering")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer within {timeout}s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], what: str = "", log: Path | None = None) -> None:
    """Terminate the server by its PID, killing it if it lingers. A server that exited on
    its own while in use is an error, reported with its log's tail (a test that failed for
    it then says why)."""
    if proc.poll() is not None:
        tail = log.read_bytes()[-4000:].decode(errors="replace") if log and log.exists() else ""
        name = what or str(proc.args)
        raise RuntimeError(f"{name} exited with {proc.returncode} while in use\n{tail}")
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def launcher(name: str) -> ModuleType:
    """``tests.backends.launch_<name>``. Missing: skipped while this build has no driver
    ``dkron_trio.backends.<name>`` either; with the driver, a failure under CI."""
    module = f"tests.backends.launch_{name}"
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        if importlib.util.find_spec(f"dkron_trio.backends.{name}") is None:
            pytest.skip(f"backend {name} is not in this build yet")
        if under_ci():
            pytest.fail(f"backend {name} has a driver but no launcher")
        pytest.skip(f"no launcher for backend {name} yet")
