"""The websocket-client probe: one message round trip that the server answers late.

Each call opens a WebSocket to a local echo server (``_slow_websocket.py``, a
plain Python process of its own), sends one text message and waits in
``recv()`` for the echo, which the server sends ``delay`` seconds later; then
it closes the connection.  ``recv()`` is the library's own blocking read (its
``_socket.recv`` over the socket, and a ``selectors.DefaultSelector`` when the
socket has a timeout): if it blocked the hub, the 20 calls would take turns and
the factor would be about 1.

The server is started by the first call (the probe's warm-up, which is not
measured) and stopped when the probe process exits; it also exits by itself
when this process dies, as its standard input then reaches end of file.
"""

from __future__ import annotations

import atexit
import importlib
import os
import subprocess
import sys
from typing import Any

from greenpatch.compat_tests.probes import ProbeContext, ProbeSetupError

__all__ = ["probe"]

_SERVER_SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_slow_websocket.py"
)
_MESSAGE = "greenpatch probe"
# delay -> (server process, ws:// URL): one server per delay, for the process's life.
_servers: dict[float, tuple[subprocess.Popen[bytes], str]] = {}


def _stop(server: subprocess.Popen[bytes]) -> None:
    if server.stdin:
        server.stdin.close()  # end of file on its stdin is its signal to exit
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def _server_url(delay: float) -> str:
    known = _servers.get(delay)
    if known is not None:
        return known[1]
    # Run by path with this interpreter, unpatched: see _slow_websocket.py.
    server = subprocess.Popen(
        [sys.executable, _SERVER_SCRIPT, "--delay", repr(delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    line = server.stdout.readline().decode("ascii", "replace").split() if server.stdout else []
    if len(line) != 2 or line[0] != "port":
        _stop(server)
        raise ProbeSetupError(f"the slow WebSocket server did not start (it printed {line!r})")
    url = f"ws://127.0.0.1:{int(line[1])}/"
    _servers[delay] = (server, url)
    atexit.register(_stop, server)
    return url


def probe(context: ProbeContext) -> None:
    """One ``send`` + ``recv`` on a new WebSocket; the echo comes ``delay`` seconds late."""
    url = _server_url(context.delay)
    # Imported here, after patch_all(); through importlib so no stubs are needed.
    websocket: Any = importlib.import_module("websocket")
    connection = websocket.create_connection(
        url,
        timeout=context.delay + 30,
        # Proxy variables of the environment must not send a loopback probe elsewhere.
        http_no_proxy=["127.0.0.1"],
    )
    try:
        connection.send(_MESSAGE)
        answer = connection.recv()
    finally:
        connection.close()
    if answer != _MESSAGE:
        raise RuntimeError(f"the echo server answered {answer!r}, not {_MESSAGE!r}")
