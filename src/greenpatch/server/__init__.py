"""The server room: servers that run on the hub.

``StreamServer`` (TCP/TLS), ``DatagramServer`` (UDP), ``WSGIServer`` (HTTP/1.1)
and ``WebSocketApp`` (RFC 6455 over the WSGI server).  See docs/server.md.
Imports only the hub: a server works whether or not the stdlib is patched.

Why the names load lazily
-------------------------
``greenpatch serve`` must patch the stdlib *before* anything imports ``ssl``
(which keeps a reference to the unpatched ``socket.socket``), but running
``greenpatch.server.cli`` first runs this file.  So this file imports nothing;
each public name is imported from its module on first access (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from greenpatch.server._io import CooperativeSocket, SocketClosedError
    from greenpatch.server.datagram import DatagramServer
    from greenpatch.server.stream import StreamServer
    from greenpatch.server.websocket import WebSocket, WebSocketApp, WebSocketError
    from greenpatch.server.wsgi import WSGIServer

_HOMES = {
    "CooperativeSocket": "greenpatch.server._io",
    "SocketClosedError": "greenpatch.server._io",
    "DatagramServer": "greenpatch.server.datagram",
    "StreamServer": "greenpatch.server.stream",
    "WSGIServer": "greenpatch.server.wsgi",
    "WebSocket": "greenpatch.server.websocket",
    "WebSocketApp": "greenpatch.server.websocket",
    "WebSocketError": "greenpatch.server.websocket",
}

__all__ = [
    "CooperativeSocket",
    "DatagramServer",
    "SocketClosedError",
    "StreamServer",
    "WSGIServer",
    "WebSocket",
    "WebSocketApp",
    "WebSocketError",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'greenpatch.server' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
