"""An alarm one task waits on, set to a Trio deadline: Trio's own timeout, or a Linux timerfd.

Trio sleeps in ``epoll_wait``, whose timeout is in whole milliseconds, rounded up: a task
woken by a deadline wakes on average half a millisecond after it, up to a whole one. A run
held for its tick (`DueQueue`) then starts that much late, on every tick. A timerfd has the
kernel's timer resolution (tens of microseconds) and is just another readable file to
Trio, so nothing blocks and nothing spins. Without one (another OS, or under
``MockClock``, whose time is not the kernel's) `TrioAlarm` does the same job at Trio's
precision.
"""

import contextlib
import ctypes
import ctypes.util
import math
import os
import sys
from typing import Protocol

import attrs
import trio
from trio.testing import MockClock


class Alarm(Protocol):
    """`set` and `clear` come from any task; one task at a time `wait`s."""

    def set(self, deadline: float) -> None:
        """Ring at Trio time ``deadline`` (replacing any earlier setting)."""

    def clear(self) -> None:
        """Ring no more until set again."""

    async def wait(self) -> None:
        """Return once the alarm rang, or may have: the caller checks what is due."""

    def close(self) -> None:
        """Free what the alarm holds."""


@attrs.define(eq=False)
class TrioAlarm:
    """`Alarm` on Trio's timeouts (millisecond precision, works under ``MockClock``)."""

    _deadline: float = math.inf
    _changed: trio.Event = attrs.field(factory=trio.Event)

    def set(self, deadline: float) -> None:
        self._deadline = deadline
        self._changed.set()

    def clear(self) -> None:
        self._deadline = math.inf

    async def wait(self) -> None:
        self._changed = trio.Event()
        with trio.move_on_at(self._deadline):
            await self._changed.wait()

    def close(self) -> None:
        pass


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


_CLOCK_MONOTONIC = 1  # the clock behind time.perf_counter, and so behind Trio's
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        ]
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


@attrs.define(eq=False)
class TimerFdAlarm:
    """`Alarm` on a Linux timerfd, armed relative to Trio's clock (both monotonic)."""

    _libc: ctypes.CDLL
    _fd: int

    @classmethod
    def create(cls) -> "TimerFdAlarm | None":
        """A new alarm, or None where timerfds cannot be had."""
        if _LIBC is None:
            return None
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            return None
        return cls(_LIBC, fd)

    def _arm(self, nanoseconds: int) -> None:
        """Ring in ``nanoseconds`` (0 disarms the timer: the kernel's meaning)."""
        value = _Timespec(*divmod(nanoseconds, 1_000_000_000))
        spec = _Itimerspec(_Timespec(0, 0), value)
        if self._libc.timerfd_settime(self._fd, 0, ctypes.byref(spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def set(self, deadline: float) -> None:
        self._arm(max(1, math.ceil((deadline - trio.current_time()) * 1e9)))

    def clear(self) -> None:
        self._arm(0)

    async def wait(self) -> None:
        await trio.lowlevel.wait_readable(self._fd)
        with contextlib.suppress(BlockingIOError):  # re-armed since it rang
            os.read(self._fd, 8)  # the count of expirations: reading resets it

    def close(self) -> None:
        os.close(self._fd)


def open_alarm() -> Alarm:
    """The most precise alarm the running Trio clock allows (call inside ``trio.run``)."""
    if not isinstance(trio.lowlevel.current_clock(), MockClock):
        alarm = TimerFdAlarm.create()
        if alarm is not None:
            return alarm
    return TrioAlarm()


async def sleep_until(deadline: float) -> None:
    """Sleep until Trio time ``deadline`` on an alarm of the caller's own: the event loop
    wakes the caller as soon as the alarm rings, with no task in between to hand it on."""
    if deadline <= trio.current_time():
        await trio.lowlevel.checkpoint()
        return
    alarm = open_alarm()
    try:
        alarm.set(deadline)
        while trio.current_time() < deadline:
            await alarm.wait()
    finally:
        alarm.close()
