"""Runs ``dkron-trio`` with every outgoing TCP connection to loopback leaving from one
chosen address (``DKRON_CHAOS_SOURCE``, e.g. 127.0.0.11).

All of 127.0.0.0/8 is local on Linux, so this changes nothing but the source address the
chaos proxy sees: from it the proxy tells which node dialed, and can cut chosen pairs.
"""

import os
import socket
import sys
from typing import Any

from dkron_trio.cli import main as cli_main

_SOURCE = os.environ.get("DKRON_CHAOS_SOURCE", "")
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _bind_source(sock: socket.socket, address: Any) -> None:
    if (
        _SOURCE
        and sock.family == socket.AF_INET
        and sock.type == socket.SOCK_STREAM
        and isinstance(address, tuple)
        and str(address[0]).startswith("127.")
        and sock.getsockname()[1] == 0
    ):
        sock.bind((_SOURCE, 0))


def _patched_connect(self: socket.socket, address: Any) -> None:
    _bind_source(self, address)
    _connect(self, address)


def _patched_connect_ex(self: socket.socket, address: Any) -> int:
    _bind_source(self, address)
    return _connect_ex(self, address)


def main() -> int:
    socket.socket.connect = _patched_connect  # type: ignore[method-assign, assignment]
    socket.socket.connect_ex = _patched_connect_ex  # type: ignore[method-assign, assignment]
    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
