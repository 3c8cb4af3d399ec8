"""Free loopback ports for servers the tests start in other processes.

A port the kernel picks for ``bind(0)`` comes from its ephemeral range, the same range every
outbound connection takes its local port from: between our check and the server's bind, a
client connecting anywhere could take it (an e2e run failed on "Address already in use").
Ports below that range are never handed out implicitly, so they are picked there.
"""

import random
import socket
from pathlib import Path

_LOWEST = 20000
_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_rng = random.SystemRandom()  # two test processes must not walk the same sequence
_given: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A port on 127.0.0.1 that nothing is bound to now, outside the ephemeral range, and
    not given out before by this process."""
    top = _ephemeral_start()
    for _ in range(1000):
        port = _rng.randrange(_LOWEST, top)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port in {_LOWEST}-{top - 1}")
