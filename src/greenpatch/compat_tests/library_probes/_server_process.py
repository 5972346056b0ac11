"""A slow probe server in a process of its own, one per delay, for the process's life.

Probes whose library needs a peer that greenpatch has no server for (a
WebSocket echo, a ZeroMQ ROUTER) start it as a plain, unpatched Python process:
``python SCRIPT --delay D`` prints ``port N`` once it listens, and exits at end
of file on its stdin, which the probing process closes at exit.
"""

from __future__ import annotations

import atexit
import subprocess
import sys
from collections.abc import Callable

from greenpatch.compat_tests.probes import ProbeSetupError

__all__ = ["SlowServers"]


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.stdin:
        server.stdin.close()  # end of file on its stdin is its signal to exit
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


class SlowServers:
    """The servers of one script: ``address(delay)`` starts one on first use."""

    def __init__(self, script: str, what: str, address_of: Callable[[int], str]) -> None:
        self._script = script
        self._what = what
        self._address_of = address_of
        self._running: dict[float, tuple[subprocess.Popen[bytes], str]] = {}

    def address(self, delay: float) -> str:
        known = self._running.get(delay)
        if known is not None:
            return known[1]
        server = subprocess.Popen(
            [sys.executable, self._script, "--delay", repr(delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        line = server.stdout.readline().decode("ascii", "replace").split() if server.stdout else []
        if len(line) != 2 or line[0] != "port":
            _stop(server)
            raise ProbeSetupError(
                f"the slow {self._what} server did not start (it printed {line!r})"
            )
        address = self._address_of(int(line[1]))
        self._running[delay] = (server, address)
        atexit.register(_stop, server)
        return address
