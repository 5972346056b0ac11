"""``Body``: the ``wsgi.input`` of one request, which never reads past that request.

The body is read from the connection's ``Reader`` and only as far as its
framing says — ``Content-Length`` bytes, or chunks up to the last one — so the
bytes after it (a pipelined request) stay in the reader's buffer for the next
round.  With no body framing at all the body is empty (RFC 9112: a request
without either header has no body).

``Expect: 100-continue`` is answered on the first read: an application that
answers without reading the body (a 413, a 401) never invites the client to
send it, and the server then closes the connection instead of reading it.

Errors in the body (a malformed chunk, a body over ``max_body_size``, a client
that stops sending) raise ``HTTPError`` to the reader and are remembered in
``error``: the server answers with that status if the application has not
started its response, and closes the connection in any case.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Callable

from greenpatch.server._http import ClientGone, HTTPError, Reader, bad_request, parse_chunk_size

__all__ = ["Body"]

#: A chunk-size line or a trailer line longer than this is refused.
MAX_CHUNK_LINE = 4096
#: Trailer bytes accepted (and dropped) after the last chunk.
MAX_TRAILERS = 16384


class Body:
    """A file-like request body: ``read``, ``readline``, ``readlines``, iteration."""

    __slots__ = (
        "_chunk_left",
        "_chunked",
        "_continue",
        "_left",
        "_max",
        "_reader",
        "_received",
        "error",
        "finished",
    )

    def __init__(
        self,
        reader: Reader,
        length: int | None,
        chunked: bool,
        max_size: int | None,
        send_continue: Callable[[], None] | None,
    ) -> None:
        self._reader = reader
        self._chunked = chunked
        self._left = length or 0  # Content-Length bytes not read yet
        self._chunk_left = 0  # bytes left in the current chunk
        self._max = max_size
        self._received = 0
        self._continue = send_continue
        self.error: HTTPError | None = None
        self.finished = not chunked and not length

    # -- the framing -------------------------------------------------------------
    def _begin(self) -> None:
        send_continue, self._continue = self._continue, None
        if send_continue is not None:
            send_continue()

    def _next_chunk(self) -> None:
        """Read the next chunk-size line (and the trailers after the last chunk)."""
        reader = self._reader
        if self._received:  # not the first chunk: the previous one ends in CRLF
            if reader.read_exact(2) != b"\r\n":
                raise bad_request("chunk data not followed by CRLF")
        size = parse_chunk_size(reader.readline(MAX_CHUNK_LINE))
        if size == 0:
            self._skip_trailers()
            self.finished = True
            return
        if self._max is not None and self._received + size > self._max:
            raise HTTPError(413, "Content Too Large")
        self._chunk_left = size
        self._received += size

    def _skip_trailers(self) -> None:
        total = 0
        while True:
            line = self._reader.readline(MAX_CHUNK_LINE)
            if line == b"\r\n":
                return
            if not line.endswith(b"\r\n"):
                raise bad_request("trailer line not terminated by CRLF")
            total += len(line)
            if total > MAX_TRAILERS:
                raise HTTPError(431, "Request Header Fields Too Large", "trailers too large")

    def _read_some(self, size: int) -> bytes:
        """Up to ``size`` body bytes (>= 1 unless the body is over)."""
        if self.finished:
            return b""
        try:
            if self._continue is not None:
                self._begin()
            if not self._chunked:
                data = self._reader.read(min(size, self._left))
                self._left -= len(data)
                if not self._left:
                    self.finished = True
                return data
            if not self._chunk_left:
                self._next_chunk()
                if self.finished:
                    return b""
            data = self._reader.read(min(size, self._chunk_left))
            self._chunk_left -= len(data)
            return data
        except HTTPError as exc:
            self.error = exc
            self.finished = True
            raise
        except ClientGone:
            self.error = bad_request("the client closed the connection inside the body")
            self.finished = True
            raise self.error from None

    # -- the file API ------------------------------------------------------------
    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            chunks = []
            while not self.finished:
                chunks.append(self._read_some(1 << 20))
            return b"".join(chunks)
        chunks = []
        while size > 0 and not self.finished:
            data = self._read_some(size)
            chunks.append(data)
            size -= len(data)
        return b"".join(chunks)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        line = bytearray()
        while (limit < 0 or len(line) < limit) and not self.finished:
            # Peek at what is buffered to find the end of the line without
            # reading byte by byte; never past this body's framing.
            want = 8192 if limit < 0 else limit - len(line)
            data = self._read_some(want)
            end = data.find(b"\n")
            if end >= 0 and end + 1 < len(data):
                self._unread(data[end + 1 :])
                data = data[: end + 1]
            line += data
            if end >= 0:
                break
        return bytes(line)

    def _unread(self, data: bytes) -> None:
        """Put back bytes of the current chunk (or Content-Length span)."""
        reader = self._reader
        reader.buffer = data + reader.buffer
        if self._chunked:
            self._chunk_left += len(data)
        else:
            self._left += len(data)
        self.finished = False

    def readlines(self, hint: int = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def drain(self, limit: int) -> bool:
        """Read and drop what is left, up to ``limit`` bytes; whether the body ended.

        A body never invited (100-continue not sent) is not drained: the client
        may not send it at all.
        """
        if self.finished:
            return self.error is None
        if self._continue is not None:
            return False
        try:
            while not self.finished and limit > 0:
                limit -= len(self._read_some(min(limit, 65536)))
        except (HTTPError, OSError):
            return False
        return self.finished and self.error is None

    def __repr__(self) -> str:
        kind = "chunked" if self._chunked else f"length, {self._left} left"
        return f"<Body {kind}{' finished' if self.finished else ''}>"
