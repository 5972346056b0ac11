"""Test clients for the servers: cooperative sockets on the test's own hub.

The servers run in the test's main thread, on its hub; a client is a greenlet
using the server room's own ``CooperativeSocket`` over a plain connected socket,
so hundreds of clients cost nothing and no test needs a thread or a sleep.
Blocking third-party clients (websocket-client, ssl handshakes) run on the hub's
thread pool instead (``in_thread``).
"""

from __future__ import annotations

import socket
from typing import Any, Callable

from greenpatch.hub.threadpool import get_threadpool
from greenpatch.server import CooperativeSocket

#: Seconds a test client waits for any single answer before failing the test.
WAIT = 10.0


def connect(address: Any, timeout: float = WAIT) -> CooperativeSocket:
    raw = socket.create_connection(address[:2], timeout=timeout)
    return CooperativeSocket(raw, timeout=timeout)


def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """Run a blocking call on a real thread; the hub (and the server) keep running."""
    return get_threadpool().apply(fn, args)


def read_until_closed(sock: CooperativeSocket) -> bytes:
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


class HTTPResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<HTTPResponse {self.status} {self.headers} {self.body[:60]!r}>"


class ResponseReader:
    """Reads HTTP responses one after another from a client socket."""

    def __init__(self, sock: CooperativeSocket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise EOFError("connection closed inside a response head")
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise EOFError("connection closed inside a response body")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read(self, head_only: bool = False) -> HTTPResponse:
        status_line = self._line()
        status = int(status_line.split(b" ")[1])
        headers: dict[str, str] = {}
        while True:
            line = self._line()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if head_only or status < 200 or status in (204, 304):
            return HTTPResponse(status, headers, b"")
        if "content-length" in headers:
            return HTTPResponse(status, headers, self._exact(int(headers["content-length"])))
        if headers.get("transfer-encoding") == "chunked":
            chunks = []
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    return HTTPResponse(status, headers, b"".join(chunks))
                chunks.append(self._exact(size))
                assert self._exact(2) == b"\r\n"
        while self._fill():
            pass
        body, self.buffer = self.buffer, b""
        return HTTPResponse(status, headers, body)


def request(address: Any, raw: bytes) -> HTTPResponse:
    """Send one raw request on a new connection and read one response."""
    with connect(address) as sock:
        sock.sendall(raw)
        return ResponseReader(sock).read()


def get(path: str = "/", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode("latin-1")
