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

import importlib
import os
from typing import Any

from greenpatch.compat_tests.library_probes._server_process import SlowServers
from greenpatch.compat_tests.probes import ProbeContext

__all__ = ["probe"]

_SERVER_SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_slow_websocket.py"
)
_MESSAGE = "greenpatch probe"
# Run by path with this interpreter, unpatched: see _slow_websocket.py.
_servers = SlowServers(_SERVER_SCRIPT, "WebSocket", lambda port: f"ws://127.0.0.1:{port}/")


def probe(context: ProbeContext) -> None:
    """One ``send`` + ``recv`` on a new WebSocket; the echo comes ``delay`` seconds late."""
    url = _servers.address(context.delay)
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
