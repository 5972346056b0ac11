"""One benchmark server in its own process: ``bench_server_serve.py IMPL echo|wsgi``.

Prints the port it listens on (a line), then serves until SIGTERM.  Every
implementation serves the same thing: echo back what it receives, or a WSGI
"Hello, World!" with a Content-Length and no access log.  The greenlet servers
(greenpatch's ``StreamServer``, gevent's, eventlet's ``serve``) run the same
idiomatic handler, ``while data := sock.recv(65536): sock.sendall(data)``;
``selectors`` is a plain-Python loop over non-blocking sockets, the floor for
Python code (its C twin is ``bench_server_cserver.c``).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any

BODY = b"Hello, World!"
ADDRESS = ("127.0.0.1", 0)


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [BODY]


def echo(sock: Any, address: Any) -> None:
    """The echo handler of the greenlet servers (greenpatch, gevent, eventlet):
    what a user writes, the same code for all three."""
    while data := sock.recv(65536):
        sock.sendall(data)


def listener() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


def announce(port: int) -> None:
    print(port, flush=True)


def serve_greenpatch(kind: str) -> None:
    import greenpatch
    from greenpatch.server import StreamServer, WSGIServer

    server: Any
    if kind == "echo":
        server = StreamServer(ADDRESS, echo)
    else:
        server = WSGIServer(ADDRESS, wsgi_app, log=None)
    server.start()
    announce(server.address[1])
    # SIGTERM's default action ends the process; nothing to clean up here.
    server.serve_forever()
    greenpatch.sleep(0)


def serve_gevent(kind: str, nodelay: bool = False) -> None:
    import gevent.socket
    from gevent.pywsgi import WSGIServer
    from gevent.server import StreamServer

    server: Any
    if kind == "echo":
        server = StreamServer(ADDRESS, echo)
    elif nodelay:
        # Accepted sockets inherit TCP_NODELAY from the listener on Linux.
        sock = listener()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server = WSGIServer(gevent.socket.socket(fileno=sock.detach()), wsgi_app, log=None)
    else:
        server = WSGIServer(ADDRESS, wsgi_app, log=None)
    server.start()
    announce(server.address[1])
    server.serve_forever()


def serve_eventlet(kind: str) -> None:
    import eventlet
    import eventlet.wsgi

    sock = eventlet.listen(("127.0.0.1", 0))
    announce(sock.getsockname()[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if kind == "wsgi":
        eventlet.wsgi.server(sock, wsgi_app, log_output=False, debug=False)
        return

    eventlet.serve(sock, echo)


def serve_asyncio(kind: str, use_uvloop: bool) -> None:
    import asyncio

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(echo, sock=listener())
        announce(server.sockets[0].getsockname()[1])
        # SIGTERM ends the process at once, as it does the other servers (a
        # graceful close waited for the client's connections to end first).
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, os._exit, 0)
        async with server:
            try:
                await server.serve_forever()
            except asyncio.CancelledError:
                pass

    if use_uvloop:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def serve_selectors(kind: str) -> None:
    """A plain-Python event loop over ``selectors``: no greenlets, no coroutines.

    The floor for a Python server on this machine: one ``select`` per batch and
    one ``recv`` and one ``send`` per round trip, nothing else.
    """
    import selectors

    if kind != "echo":
        raise SystemExit("selectors serves echo only")
    sel = selectors.DefaultSelector()
    server = listener()
    server.setblocking(False)
    sel.register(server, selectors.EVENT_READ)
    announce(server.getsockname()[1])
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            if sock is server:
                while True:
                    try:
                        conn, _address = server.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ)
                continue
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            if data:
                sock.send(data)  # 1 KiB always fits the socket's buffer here
            else:
                sel.unregister(sock)
                sock.close()


def main_for(impl: str, kind: str) -> None:
    """Serve ``kind`` with ``impl`` until SIGTERM (bench_server_profile.py calls it)."""
    if impl == "greenpatch":
        serve_greenpatch(kind)
    elif impl == "gevent":
        serve_gevent(kind)
    elif impl == "gevent-nodelay":
        serve_gevent(kind, nodelay=True)
    elif impl == "eventlet":
        serve_eventlet(kind)
    elif impl in ("asyncio", "uvloop"):
        serve_asyncio(kind, impl == "uvloop")
    elif impl == "selectors":
        serve_selectors(kind)
    else:
        raise SystemExit(f"unknown implementation {impl!r}")


def main() -> None:
    main_for(sys.argv[1], sys.argv[2])


if __name__ == "__main__":
    main()
