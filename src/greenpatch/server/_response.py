"""``Response``: ``start_response``, ``write`` and the framing of one WSGI response.

Framing, decided when the head is sent:

* the application gave ``Content-Length``: sent as is; a body shorter than it
  closes the connection (the client cannot tell where the next response
  starts), a longer one is cut and logged;
* the application returned a one-item list: its length is the Content-Length
  (the common case, and one ``send`` for head and body together);
* otherwise HTTP/1.1 gets ``Transfer-Encoding: chunked``, HTTP/1.0 a body
  delimited by closing the connection;
* HEAD, 1xx, 204 and 304 responses carry no body, whatever the app yields.

Response splitting: ``start_response`` refuses a status or header holding CR or
LF (and header names that are not tokens) with ``ValueError``; the server then
answers 500 instead of sending what the application gave.  Hop-by-hop framing
headers are the server's business: ``Transfer-Encoding`` from an application is
refused, ``Connection: close`` is honoured.
"""

from __future__ import annotations

from email.utils import formatdate
from time import time
from typing import TYPE_CHECKING, Any, Callable

from greenpatch.server._http import Request
from greenpatch.server.base import log

if TYPE_CHECKING:
    from greenpatch.server._http import Reader
    from greenpatch.server._io import CooperativeSocket

__all__ = ["ClientWriteError", "FileWrapper", "Response", "error_response", "http_date"]

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_GOOD_NAMES: dict[str, str] = {}  # validated header name -> lower case
_MAX_GOOD_NAMES = 1024
#: Bodies up to this size are sent in one buffer with their chunk framing.
_COPY_LIMIT = 65536


class ClientWriteError(OSError):
    """Sending to the client failed (it went away, or stopped reading for too long)."""


_date_second = 0
_date_text = ""


def http_date() -> str:
    """The current time as an HTTP date, formatted at most once per second."""
    global _date_second, _date_text
    now = int(time())
    if now != _date_second:
        _date_second = now
        _date_text = formatdate(now, usegmt=True)
    return _date_text


def error_response(status: int, reason: str, close: bool = True, detail: str = "") -> bytes:
    """A small plain-text response for errors the server answers itself."""
    body = f"{status} {reason}\n{detail + chr(10) if detail else ''}".encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nDate: {http_date()}\r\n"
        f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
    ).encode("latin-1") + body


def _lower_name(name: str) -> str:
    lower = _GOOD_NAMES.get(name)
    if lower is not None:
        return lower
    if type(name) is not str:
        raise TypeError(f"header names must be str, not {type(name).__name__}")
    if not name or not _TOKEN.issuperset(name):
        raise ValueError(f"invalid response header name {name!r}")
    lower = name.lower()
    if len(_GOOD_NAMES) < _MAX_GOOD_NAMES:
        _GOOD_NAMES[name] = lower
    return lower


class Response:
    """The response side of one request; the server calls ``send``/``finish``."""

    __slots__ = (
        "_no_body",
        "_sock",
        "chunked",
        "close",
        "code",
        "headers",
        "headers_sent",
        "hijacked",
        "length",
        "request",
        "sent",
        "server",
        "status",
    )

    def __init__(self, sock: CooperativeSocket, request: Request, server: Any) -> None:
        self._sock = sock
        self.request = request
        # Read when the head goes out: a stop() begun meanwhile must say "close".
        self.server = server
        self.status: str | None = None
        self.code = 0
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.hijacked = False
        self.chunked = False
        self.close = False
        self.length: int | None = None
        self.sent = 0
        self._no_body = request.method == "HEAD"

    # -- the WSGI callable -----------------------------------------------------------
    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self.status is not None:
            raise RuntimeError("start_response was called twice without exc_info")
        if type(status) is not str:
            raise TypeError(f"the status must be str, not {type(status).__name__}")
        if len(status) < 4 or not status[:3].isdigit() or status[3] != " ":
            raise ValueError(f"malformed status {status!r} (expected '200 OK')")
        if "\r" in status or "\n" in status:
            raise ValueError("CR or LF in the response status")
        length = None
        close = False
        for name, value in headers:
            lower = _lower_name(name)
            if type(value) is not str:
                raise TypeError(f"header {name} must have a str value, not {type(value).__name__}")
            if "\r" in value or "\n" in value:
                raise ValueError(f"CR or LF in the value of response header {name!r}")
            if lower == "content-length":
                if not value.isdigit():
                    raise ValueError(f"invalid Content-Length {value!r}")
                length = int(value)
            elif lower == "connection":
                close = close or "close" in value.lower()
            elif lower == "transfer-encoding":
                raise ValueError("Transfer-Encoding is set by the server, not the application")
        code = int(status[:3])
        self.status = status
        self.code = code
        self.headers = list(headers)
        self.length = length
        self.close = close
        self._no_body = self.request.method == "HEAD" or code < 200 or code in (204, 304)
        return self.write

    def write(self, data: bytes) -> None:
        """The ``write`` callable of ``start_response``; also used for iterated chunks."""
        if not self.headers_sent:
            if self.status is None:
                raise RuntimeError("the application sent body data before start_response")
            if not data:
                return  # PEP 3333: the head may wait for the first non-empty chunk
            self._send(self._head(None) + self._frame(data))
            return
        if data:
            framed = self._frame(data)
            if framed:
                self._send(framed)

    # -- framing ---------------------------------------------------------------------
    def _frame(self, data: bytes) -> bytes:
        """``data`` as it goes on the wire, counting it; b"" when nothing may be sent."""
        if self._no_body:
            return b""
        if type(data) is not bytes:
            if isinstance(data, str):
                raise TypeError("the application yielded str; WSGI bodies are bytes")
            data = bytes(data)
        size = len(data)
        if self.chunked:
            self.sent += size
            if size > _COPY_LIMIT:
                self._send(b"%x\r\n" % size)
                self._send(data)
                return b"\r\n"
            return b"%x\r\n%s\r\n" % (size, data)
        if self.length is not None:
            left = self.length - self.sent
            if size > left:
                print_overflow(self, size - left)
                self.close = True
                data = data[:left]
                size = left
        self.sent += size
        return data

    def _head(self, known_length: int | None) -> bytes:
        """Serialize the head, choosing the framing; ``known_length`` is the whole body's."""
        self.headers_sent = True
        request = self.request
        parts = [f"HTTP/1.1 {self.status}\r\n"]
        for name, value in self.headers:
            parts.append(f"{name}: {value}\r\n")
        if self.length is None and not self._no_body:
            if known_length is not None:
                parts.append(f"Content-Length: {known_length}\r\n")
            elif request.version == "HTTP/1.1":
                parts.append("Transfer-Encoding: chunked\r\n")
                self.chunked = True
            else:
                self.close = True  # HTTP/1.0: the end of the body is the end of the connection
        elif self.length is None and known_length is not None and request.method == "HEAD":
            parts.append(f"Content-Length: {known_length}\r\n")
        if self.server._stopping or not request.keep_alive:
            self.close = True
        if self.close:
            parts.append("Connection: close\r\n")
        elif request.version == "HTTP/1.0":
            parts.append("Connection: keep-alive\r\n")
        parts.append(f"Date: {http_date()}\r\n\r\n")
        try:
            return "".join(parts).encode("latin-1")
        except UnicodeEncodeError:
            self.headers_sent = False
            raise ValueError("response headers must be latin-1 text (PEP 3333)") from None

    def _send(self, data: bytes) -> None:
        # ``send`` in a loop rather than ``sendall``: the socket's timeout (the
        # server's read_timeout) then bounds each wait for the client to take
        # bytes, not the whole body -- a slow reader is served, a stalled one
        # is dropped instead of holding its connection forever.
        sock = self._sock
        try:
            sent = sock.send(data)
            if sent < len(data):
                with memoryview(data) as view:
                    while sent < len(view):
                        sent += sock.send(view[sent:])
        except OSError as exc:
            raise ClientWriteError(exc.errno, f"sending the response failed: {exc}") from exc

    # -- driven by the server --------------------------------------------------------
    def send_whole(self, data: bytes) -> None:
        """The application returned ``[data]``: head and body in one send."""
        if self.status is None:
            raise RuntimeError("the application returned without calling start_response")
        if type(data) is not bytes:
            self.write(data)
            self.finish()
            return
        head = self._head(len(data))
        self._send(head + self._frame(data) if data else head)
        self.finish()

    def finish(self) -> None:
        """After the body: send a head not sent yet, end chunking, check the length."""
        if not self.headers_sent:
            if self.status is None:
                raise RuntimeError("the application returned without calling start_response")
            self._send(self._head(0))
        if self.chunked:
            self._send(b"0\r\n\r\n")
        elif self.length is not None and self.sent < self.length and not self._no_body:
            self.close = True  # the client waits for bytes that will never come

    def upgrade(self, headers: list[tuple[str, str]], reader: Reader) -> tuple[Any, Reader]:
        """Send ``101 Switching Protocols``; the connection then belongs to the caller."""
        if self.headers_sent:
            raise RuntimeError("cannot upgrade: a response was already sent")
        self.start_response("101 Switching Protocols", headers)
        parts = ["HTTP/1.1 101 Switching Protocols\r\n"]
        parts.extend(f"{name}: {value}\r\n" for name, value in headers)
        parts.append("\r\n")
        self.headers_sent = True
        self.hijacked = True
        self._send("".join(parts).encode("latin-1"))
        return self._sock, reader


def print_overflow(response: Response, extra: int) -> None:
    log.error(
        "the application sent %d bytes more than its Content-Length %s; cut",
        extra,
        response.length,
    )


class FileWrapper:
    """``wsgi.file_wrapper``: iterate over a file in blocks and close it afterwards."""

    def __init__(self, filelike: Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> FileWrapper:
        return self

    def __next__(self) -> bytes:
        data = self.filelike.read(self.blksize)
        if data:
            return bytes(data)
        raise StopIteration

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()
