"""HTTP/1.x request heads: read them from a connection and parse them, strictly.

Rule 1: framing is decided here and nowhere else
------------------------------------------------
Request smuggling lives in the gaps between two parsers' ideas of where a body
ends.  So this module refuses every request whose framing is ambiguous instead
of guessing: Content-Length *and* Transfer-Encoding, two different
Content-Lengths, a Content-Length that is not plain digits, a transfer coding
other than ``chunked``, whitespace between a header name and its colon, an
obsolete folded line, a bare CR or LF inside a line.  Each becomes an
``HTTPError`` carrying the status to answer (and the connection is closed after
it, since where the next request starts is then unknown).

Lines end in CRLF.  RFC 9112 lets a server accept a bare LF; we do not, because
a front proxy that splits on CRLF only would then see a different request.

Why parse from one bytes object
-------------------------------
A request head almost always arrives whole in one ``recv``.  Finding the blank
line and splitting the head once, with the C-level ``bytes`` methods, costs a
few microseconds; reading line by line through a file object (as the stdlib's
``http.server`` does) costs a Python call per line.  Header names are mapped to
their WSGI keys through a small cache, since the same dozen names come back in
every request.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from greenpatch.server._io import CooperativeSocket

__all__ = ["HTTPError", "Limits", "Reader", "Request", "parse_head"]

# RFC 9110 token characters, for header names and methods.
_TOKEN = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CTL_IN_TARGET = bytes(range(0x21)) + b"\x7f"
_VERSIONS = {b"HTTP/1.1": "HTTP/1.1", b"HTTP/1.0": "HTTP/1.0"}
_HEX = b"0123456789abcdefABCDEF"
#: Bytes requested per ``recv``: a whole head, or a good slice of a body.
RECV_SIZE = 65536
#: The most one ``recv`` asks for.  ``recv(n)`` allocates n bytes up front, so a
#: size taken from the peer (a WebSocket frame claiming 2**40 bytes) must not
#: reach it unbounded: that is a MemoryError, or an OverflowError past 2**63.
MAX_RECV_SIZE = 1 << 20


class HTTPError(Exception):
    """A request the server refuses; ``status`` is the response to send (then close)."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{status} {reason}: {detail}" if detail else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.detail = detail


def bad_request(detail: str) -> HTTPError:
    return HTTPError(400, "Bad Request", detail)


class ClientGone(Exception):
    """The client closed the connection in the middle of a request."""


class Limits:
    """The sizes and times a server accepts; see ``WSGIServer`` for their meaning."""

    __slots__ = (
        "body_timeout",
        "header_timeout",
        "keepalive_timeout",
        "max_body_size",
        "max_header_line",
        "max_header_size",
        "max_headers",
        "max_request_line",
        "read_timeout",
    )

    def __init__(
        self,
        max_request_line: int = 8190,
        max_header_size: int = 65536,
        max_headers: int = 100,
        max_body_size: int | None = None,
        header_timeout: float | None = 10.0,
        keepalive_timeout: float | None = 15.0,
        read_timeout: float | None = 60.0,
        body_timeout: float | None = None,
        max_header_line: int = 8190,
    ) -> None:
        self.max_request_line = max_request_line
        self.max_header_line = max_header_line
        self.max_header_size = max_header_size
        self.max_headers = max_headers
        self.max_body_size = max_body_size
        self.header_timeout = header_timeout
        self.keepalive_timeout = keepalive_timeout
        self.read_timeout = read_timeout
        self.body_timeout = body_timeout


class Reader:
    """Buffered reads from a connection: heads, lines and exact byte counts.

    ``buffer`` holds what was received and not consumed yet: the rest of a
    body, or the next pipelined request.
    """

    __slots__ = ("body_deadline", "buffer", "sock", "timeout")

    def __init__(self, sock: CooperativeSocket, timeout: float | None) -> None:
        self.sock = sock
        self.timeout = timeout
        self.buffer = b""
        #: When the body being read must have arrived (``monotonic()``), or None.
        self.body_deadline: float | None = None

    def fill(self, timeout: float | None) -> bool:
        """Receive once more into the buffer; False at EOF.  TimeoutError on timeout."""
        data = self.sock.recv_timeout(RECV_SIZE, timeout)
        if not data:
            return False
        self.buffer = self.buffer + data if self.buffer else data
        return True

    def read_head(self, limits: Limits) -> bytes:
        """The next request head, without its blank line; the buffer must not be empty.

        Raises ``HTTPError`` (408, 414, 431) or ``ClientGone``.
        """
        buf = self.buffer
        # RFC 9112 2.2: ignore empty lines before a request (some clients send
        # a CRLF after a body).
        while buf.startswith(b"\r\n"):
            buf = buf[2:]
        deadline = None
        start = 0
        while True:
            end = buf.find(b"\r\n\r\n", start)
            if end >= 0:
                self.buffer = buf[end + 4 :]
                return buf[:end]
            if b"\r\n" not in buf and len(buf) > limits.max_request_line:
                raise HTTPError(414, "URI Too Long")
            if len(buf) > limits.max_header_size:
                raise HTTPError(431, "Request Header Fields Too Large")
            if deadline is None and limits.header_timeout is not None:
                deadline = monotonic() + limits.header_timeout
            remaining = None if deadline is None else deadline - monotonic()
            try:
                if remaining is not None and remaining <= 0:
                    raise TimeoutError
                data = self.sock.recv_timeout(RECV_SIZE, remaining)
            except TimeoutError:
                raise HTTPError(408, "Request Timeout") from None
            if not data:
                raise ClientGone()
            start = max(len(buf) - 3, 0)
            buf += data
            while buf.startswith(b"\r\n"):
                buf = buf[2:]
                start = 0

    def _receive(self, size: int) -> bytes:
        """One recv of up to ``size`` bytes (at least one): 408 on timeout, ClientGone at EOF."""
        timeout = self.timeout
        deadline = self.body_deadline
        if deadline is not None:
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise HTTPError(408, "Request Timeout", "the body took longer than body_timeout")
            timeout = remaining if timeout is None else min(timeout, remaining)
        try:
            data = self.sock.recv_timeout(min(max(size, RECV_SIZE), MAX_RECV_SIZE), timeout)
        except TimeoutError:
            raise HTTPError(408, "Request Timeout", "the body stopped arriving") from None
        if not data:
            raise ClientGone()
        return data

    def read(self, size: int) -> bytes:
        """At most ``size`` bytes (at least one unless EOF): the buffer, else one recv."""
        buf = self.buffer
        if not buf:
            buf = self._receive(size)
        if len(buf) <= size:
            self.buffer = b""
            return buf
        self.buffer = buf[size:]
        return buf[:size]

    def read_exact(self, size: int) -> bytes:
        chunks = []
        while size > 0:
            chunk = self.read(size)
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def readline(self, limit: int) -> bytes:
        """One CRLF-terminated line (terminator included); 400 when longer than ``limit``."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= limit:  # the same limit whether the line came in one packet or many
                raise bad_request("line too long in a chunked body")
            if end >= 0:
                line = self.buffer[: end + 1]
                self.buffer = self.buffer[end + 1 :]
                return line
            if len(self.buffer) > limit:
                raise bad_request("line too long in a chunked body")
            # Receive, not ``read``: ``read`` hands back the buffer when it holds
            # bytes, so a line split across two packets would spin here forever,
            # holding the hub (one client's slow chunk-size line froze the server).
            self.buffer += self._receive(RECV_SIZE)


class Request:
    """A parsed request head: what the WSGI environ and the body framing need."""

    __slots__ = (
        "chunked",
        "content_length",
        "environ",
        "expect_continue",
        "keep_alive",
        "method",
        "target",
        "upgrade",
        "version",
    )

    def __init__(self, method: str, target: bytes, version: str) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.environ: dict[str, Any] = {}
        self.content_length: int | None = None
        self.chunked = False
        self.keep_alive = version == "HTTP/1.1"
        self.expect_continue = False
        self.upgrade = False


# Header name (as received) -> WSGI environ key, or "" for names we drop.
_KEYS: dict[bytes, str] = {}
_MAX_CACHED_KEYS = 1024


def _environ_key(name: bytes) -> str:
    key = _KEYS.get(name)
    if key is not None:
        return key
    if not name or name.translate(None, _TOKEN):
        raise bad_request(f"invalid header name {name[:40]!r}")
    if b"_" in name:
        # "X_Forwarded" and "X-Forwarded" would map to the same key: a client
        # could forge a header a front proxy set.  Drop underscored names.
        key = ""
    else:
        upper = name.decode("ascii").upper().replace("-", "_")
        key = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + upper
    if len(_KEYS) < _MAX_CACHED_KEYS:
        _KEYS[name] = key
    return key


def parse_head(head: bytes, limits: Limits) -> Request:
    """Parse a request head (request line and header lines, CRLF separated)."""
    lines = head.split(b"\r\n")
    request_line = lines[0]
    if len(request_line) > limits.max_request_line:
        raise HTTPError(414, "URI Too Long")
    if len(head) > limits.max_header_size:
        raise HTTPError(431, "Request Header Fields Too Large")
    if len(lines) - 1 > limits.max_headers:
        raise HTTPError(431, "Request Header Fields Too Large", "too many header fields")
    parts = request_line.split(b" ")
    if len(parts) != 3:
        raise bad_request("malformed request line")
    method, target, raw_version = parts
    version = _VERSIONS.get(raw_version)
    if version is None:
        if raw_version.startswith(b"HTTP/") and raw_version[5:].replace(b".", b"").isdigit():
            raise HTTPError(505, "HTTP Version Not Supported")
        raise bad_request("malformed HTTP version")
    if not method or method.translate(None, _TOKEN):
        raise bad_request("malformed method")
    if not target or len(target.translate(None, _CTL_IN_TARGET)) != len(target):
        raise bad_request("malformed request target")
    request = Request(method.decode("ascii"), target, version)
    environ = request.environ
    lengths: list[bytes] = []
    codings: list[bytes] = []
    connection = b""
    # Only a head longer than the per-line limit can hold a line over it: the
    # usual small head pays nothing per line.
    max_header_line = limits.max_header_line
    if len(head) > max_header_line and any(len(line) > max_header_line for line in lines[1:]):
        raise HTTPError(431, "Request Header Fields Too Large", "a header line is too long")
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise bad_request("header line without a colon")
        key = _environ_key(name)  # rejects "Name :", " folded", empty names
        value = value.strip(b" \t")
        if b"\n" in value or b"\r" in value or b"\x00" in value:
            raise bad_request("CR, LF or NUL in a header value")
        if not key:
            continue
        if key == "CONTENT_LENGTH":
            lengths.append(value)
        elif key == "HTTP_TRANSFER_ENCODING":
            codings.append(value)
        elif key == "HTTP_CONNECTION":
            connection += b"," + value.lower()
        elif key == "HTTP_HOST" and key in environ:
            raise bad_request("more than one Host header")
        elif key == "HTTP_EXPECT":
            if value.lower() != b"100-continue":
                raise HTTPError(417, "Expectation Failed")
            request.expect_continue = version == "HTTP/1.1"
        text = value.decode("latin-1")
        previous = environ.get(key)
        if previous is None:
            environ[key] = text
        else:
            environ[key] = previous + ("; " if key == "HTTP_COOKIE" else ",") + text
    if connection:
        tokens = {token.strip() for token in connection.split(b",")}
        if b"close" in tokens:
            request.keep_alive = False
        elif b"keep-alive" in tokens:
            request.keep_alive = True
        request.upgrade = b"upgrade" in tokens
    if version == "HTTP/1.1" and "HTTP_HOST" not in environ:
        raise bad_request("an HTTP/1.1 request needs a Host header")
    if codings:
        _set_chunked(request, codings, lengths)
    elif lengths:
        _set_length(request, lengths)
    return request


def _set_chunked(request: Request, codings: list[bytes], lengths: list[bytes]) -> None:
    if lengths:
        raise bad_request("both Content-Length and Transfer-Encoding")
    if request.version != "HTTP/1.1":
        raise bad_request("Transfer-Encoding in an HTTP/1.0 request")
    names = [c.strip(b" \t").lower() for c in b",".join(codings).split(b",")]
    if names != [b"chunked"]:
        raise HTTPError(501, "Not Implemented", "only the chunked transfer coding is supported")
    request.chunked = True


def _set_length(request: Request, lengths: list[bytes]) -> None:
    values = {v.strip(b" \t") for value in lengths for v in value.split(b",")}
    if len(values) != 1:
        raise bad_request("conflicting Content-Length values")
    (value,) = values
    if not value.isdigit() or len(value) > 18:
        raise bad_request("malformed Content-Length")
    request.content_length = int(value)
    request.environ["CONTENT_LENGTH"] = str(request.content_length)


def parse_chunk_size(line: bytes) -> int:
    """The size in a chunk-size line (``1a;ext=1\\r\\n``); 400 on anything malformed."""
    if not line.endswith(b"\r\n"):
        raise bad_request("chunk-size line not terminated by CRLF")
    size, _, _extension = line[:-2].partition(b";")
    size = size.rstrip(b" \t")
    if not size or len(size) > 15 or size.translate(None, _HEX):
        raise bad_request(f"malformed chunk size {size[:20]!r}")
    return int(size, 16)
