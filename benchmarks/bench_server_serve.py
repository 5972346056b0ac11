"""One benchmark server in its own process: ``bench_server_serve.py IMPL echo|wsgi``.

Prints the port it listens on (a line), then serves until SIGTERM.  Every
implementation serves the same thing: echo back what it receives, or a WSGI
"Hello, World!" with a Content-Length and no access log.
"""

from __future__ import annotations

import signal
import socket
import sys
from typing import Any

BODY = b"Hello, World!"
ADDRESS = ("127.0.0.1", 0)


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [BODY]


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

    def echo(sock: Any, address: Any) -> None:
        recv, sendall = sock.recv, sock.sendall
        while True:
            data = recv(65536)
            if not data:
                return
            sendall(data)

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

    def echo(sock: Any, address: Any) -> None:
        recv, sendall = sock.recv, sock.sendall
        while True:
            data = recv(65536)
            if not data:
                return
            sendall(data)

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

    def echo(conn: Any, address: Any) -> None:
        recv, sendall = conn.recv, conn.sendall
        while True:
            data = recv(65536)
            if not data:
                return
            sendall(data)

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
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, server.close)
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


def main() -> None:
    impl, kind = sys.argv[1], sys.argv[2]
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
    else:
        raise SystemExit(f"unknown implementation {impl!r}")


if __name__ == "__main__":
    main()
