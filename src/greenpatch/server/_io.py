"""``CooperativeSocket``: the socket a server hands to its handlers.

Why not the green socket of the patcher
---------------------------------------
The server room may import only the hub (DESIGN.md), and a server must work
whether or not the stdlib is patched.  So this is a small wrapper of its own
over a plain stdlib socket kept non-blocking in the kernel: every call first
tries the system call and, when the kernel says "would block", waits on the hub
for readiness (at most the timeout) and tries again.

Why try first
-------------
For a server the data is often already there (a request that arrived with the
connection, the rest of a body).  Trying costs one failed system call when it is
not; waiting first would cost a full trip through the loop when it is.

After a short read, wait first
------------------------------
A ``recv`` that returned fewer bytes than asked for has, almost always, emptied
the kernel's buffer; the next ``recv`` would fail with EAGAIN, an exception that
costs a system call, a ``strerror`` and a Python exception object.  So a plain
socket remembers a short read and the next ``recv`` waits for readiness first.
Readiness is level-triggered, so if the data did arrive meanwhile the wait ends
in the next loop iteration: wrong guesses cost one trip through the loop, right
ones (an echo or keep-alive exchange) save about a tenth of the server's time.
TLS sockets never guess: OpenSSL may hold decrypted bytes that epoll cannot see.

Each socket keeps one read and one write watcher and reuses them: creating a
libev watcher costs an allocation and several cffi crossings, and a connection
waits thousands of times.

TLS rides on the same loop: an ``ssl.SSLSocket`` over a non-blocking descriptor
raises ``SSLWantReadError``/``SSLWantWriteError`` instead of blocking, and those
say which way to wait (a TLS write may need to read first, and vice versa).
"""

from __future__ import annotations

import _socket
import errno
import io
import socket
import ssl
from time import monotonic
from typing import Any

from greenpatch.hub import get_hub
from greenpatch.hub.watchers import READ, WRITE, IoWatcher

__all__ = ["CooperativeSocket", "SocketClosedError"]

# The C socket type: the stdlib's ``socket.socket`` (or the patcher's green class,
# when the stdlib is patched) only adds Python-level wrappers above it, and the
# servers want the bare system calls on their hot paths.
RawSocket = _socket.socket
_WouldBlock = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError, InterruptedError)

if issubclass(socket.timeout, TimeoutError):  # Python 3.10+: one and the same
    SocketTimeout: type[OSError] = socket.timeout
else:  # Python 3.9: socket.timeout is an OSError of its own

    class SocketTimeout(socket.timeout, TimeoutError):  # type: ignore[no-redef, misc]
        """``socket.timeout`` that is also a ``TimeoutError``, as on Python 3.10+."""


_UNSET: Any = object()


class SocketClosedError(OSError):
    """The socket was closed (by another greenlet or the server) while a greenlet used it."""

    def __init__(self) -> None:
        super().__init__(errno.EBADF, "socket closed while a greenlet waited on it")


class CooperativeSocket:
    """A non-blocking stdlib socket (or ``SSLSocket``) whose blocking calls wait on the hub.

    ``settimeout(None)`` (the default) waits forever; a number bounds each call
    and raises ``TimeoutError`` (``socket.timeout``).  Closing it wakes any
    greenlet blocked on it with ``SocketClosedError``.
    """

    __slots__ = (
        "_hub",
        "_read",
        "_recv",
        "_recv_into",
        "_send",
        "_short_read",
        "_sock",
        "_timeout",
        "_write",
        "fd",
    )

    def __init__(self, sock: Any, timeout: float | None = None) -> None:
        RawSocket.setblocking(sock, False)
        self._sock: socket.socket = sock
        self.fd: int = sock.fileno()
        # None: never guess (TLS); else whether the last plain read came up short.
        self._short_read: bool | None = None
        if isinstance(sock, ssl.SSLSocket):
            self._recv, self._recv_into, self._send = sock.recv, sock.recv_into, sock.send
        else:
            self._short_read = False
            # Bound C methods: skips any Python-level override (a patched socket's).
            self._recv = RawSocket.recv.__get__(sock)
            self._recv_into = RawSocket.recv_into.__get__(sock)
            self._send = RawSocket.send.__get__(sock)
        self._timeout = timeout
        self._hub = get_hub()
        self._read: IoWatcher | None = None
        self._write: IoWatcher | None = None

    # -- waiting -------------------------------------------------------------
    def _wait(self, events: int, timeout: float | None) -> None:
        if self.fd < 0:
            raise SocketClosedError()
        hub = self._hub
        if events == READ:
            watcher = self._read
            if watcher is None:
                watcher = self._read = IoWatcher(hub.loop, self.fd, READ)
        else:
            watcher = self._write
            if watcher is None:
                watcher = self._write = IoWatcher(hub.loop, self.fd, WRITE)
        if timeout is None:
            hub.wait(watcher)
        else:
            hub.wait(watcher, timeout, SocketTimeout("timed out"))

    def _wait_for(self, exc: BaseException, timeout: float | None) -> None:
        # SSL says which way it needs to go; plain sockets block on the call's own way.
        self._wait(WRITE if isinstance(exc, ssl.SSLWantWriteError) else READ, timeout)

    def wait_readable(self, timeout: float | None = _UNSET) -> None:
        """Block until there is something to read (or EOF); raise TimeoutError on timeout."""
        self._wait(READ, self._timeout if timeout is _UNSET else timeout)

    # -- timeout semantics -----------------------------------------------------
    def settimeout(self, value: float | None) -> None:
        if value is not None and value < 0:
            raise ValueError("Timeout value out of range")
        self._timeout = value

    def gettimeout(self) -> float | None:
        return self._timeout

    @property
    def timeout(self) -> float | None:
        return self._timeout

    # -- receiving -------------------------------------------------------------
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        recv = self._recv
        timeout = self._timeout
        if self._short_read and not flags and timeout != 0.0:
            self._wait(READ, timeout)
        while True:
            try:
                data = recv(bufsize, flags)
            except _WouldBlock as exc:
                if timeout == 0.0:
                    raise
                self._wait_for(exc, timeout)
                continue
            if self._short_read is not None:
                self._short_read = 0 < len(data) < bufsize
            return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        recv_into = self._recv_into
        timeout = self._timeout
        if self._short_read and not flags and timeout != 0.0:
            self._wait(READ, timeout)
        while True:
            try:
                count = recv_into(buffer, nbytes, flags)
            except _WouldBlock as exc:
                if timeout == 0.0:
                    raise
                self._wait_for(exc, timeout)
                continue
            if self._short_read is not None:
                self._short_read = 0 < count < (nbytes or len(buffer))
            return count

    def recv_timeout(self, bufsize: int, timeout: float | None) -> bytes:
        """``recv`` with its own timeout (the servers' header and idle deadlines)."""
        recv = self._recv
        if self._short_read and (timeout is None or timeout > 0):
            self._wait(READ, timeout)
        while True:
            try:
                data = recv(bufsize)
            except _WouldBlock as exc:
                if timeout is not None and timeout <= 0:
                    raise SocketTimeout("timed out") from None
                self._wait_for(exc, timeout)
                continue
            if self._short_read is not None:
                self._short_read = 0 < len(data) < bufsize
            return data

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        sock = self._sock
        while True:
            try:
                return sock.recvfrom(bufsize, flags)
            except _WouldBlock as exc:
                if self._timeout == 0.0:
                    raise
                self._wait_for(exc, self._timeout)

    # -- sending ---------------------------------------------------------------
    def send(self, data: Any, flags: int = 0) -> int:
        send = self._send
        while True:
            try:
                return send(data, flags)
            except _WouldBlock as exc:
                if self._timeout == 0.0:
                    raise
                self._wait_for(exc, self._timeout)

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send everything; the timeout bounds the whole call, as in the stdlib."""
        send = self._send
        try:
            sent = send(data, flags)
        except _WouldBlock:
            sent = 0
        total = len(data)
        if sent >= total:  # the common case: one call, no memoryview
            return
        timeout = self._timeout
        deadline = None if timeout is None else monotonic() + timeout
        with memoryview(data) as view, view.cast("B") as byte_view:
            total = len(byte_view)
            while sent < total:
                try:
                    sent += send(byte_view[sent:], flags)
                    continue
                except _WouldBlock as exc:
                    if timeout == 0.0:
                        raise
                    remaining = None if deadline is None else deadline - monotonic()
                    if remaining is not None and remaining <= 0:
                        raise SocketTimeout("timed out") from None
                    self._wait_for(exc, remaining)

    def sendto(self, data: Any, address: Any) -> int:
        sock = self._sock
        while True:
            try:
                return sock.sendto(data, address)
            except _WouldBlock as exc:
                if self._timeout == 0.0:
                    raise
                self._wait_for(exc, self._timeout)

    # -- TLS -------------------------------------------------------------------
    def do_handshake(self, timeout: float | None) -> None:
        """Finish the TLS handshake of a wrapped socket, waiting on the hub as it asks."""
        sock = self._sock
        if not isinstance(sock, ssl.SSLSocket):
            raise TypeError("do_handshake needs a socket wrapped by an SSLContext")
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            try:
                sock.do_handshake()
                return
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as exc:
                remaining = None if deadline is None else deadline - monotonic()
                if remaining is not None and remaining <= 0:
                    raise SocketTimeout("TLS handshake timed out") from None
                self._wait_for(exc, remaining)

    # -- the rest of the socket API --------------------------------------------
    def fileno(self) -> int:
        return self.fd

    def getpeername(self) -> Any:
        return self._sock.getpeername()

    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        self._sock.setsockopt(level, option, value)

    def getsockopt(self, level: int, option: int, buflen: int = 0) -> Any:
        if buflen:
            return self._sock.getsockopt(level, option, buflen)
        return self._sock.getsockopt(level, option)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    @property
    def raw(self) -> Any:
        """The underlying (non-blocking) stdlib socket."""
        return self._sock

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def makefile(self, mode: str = "rb", buffering: int = -1) -> Any:
        """A buffered binary file over this socket (``"rb"``, ``"wb"`` or ``"rwb"``).

        Closing the file does not close the socket.
        """
        if not set(mode) <= {"r", "w", "b"} or "b" not in mode:
            raise ValueError(f"makefile supports binary modes 'rb', 'wb', 'rwb', not {mode!r}")
        reading, writing = "r" in mode, "w" in mode
        raw = _SocketIO(self, reading, writing)
        if buffering == 0:
            return raw
        size = io.DEFAULT_BUFFER_SIZE if buffering < 0 else buffering
        if reading and writing:
            return io.BufferedRWPair(raw, raw, size)
        if reading:
            return io.BufferedReader(raw, size)
        return io.BufferedWriter(raw, size)

    def close(self) -> None:
        """Close the descriptor; greenlets blocked on it get ``SocketClosedError``."""
        if self.fd < 0:
            return
        hub = self._hub
        for watcher in (self._read, self._write):
            if watcher is not None:
                hub.cancel_wait(watcher, SocketClosedError())
                watcher.close()
        self._read = self._write = None
        self.fd = -1
        self._sock.close()

    def __enter__(self) -> CooperativeSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CooperativeSocket fd={self.fd} timeout={self._timeout}>"


class _SocketIO(io.RawIOBase):
    """The raw file under ``makefile``: reads and writes go through the socket's waits."""

    def __init__(self, sock: CooperativeSocket, reading: bool, writing: bool) -> None:
        super().__init__()
        self._cooperative = sock
        self._reading = reading
        self._writing = writing

    def readable(self) -> bool:
        return self._reading

    def writable(self) -> bool:
        return self._writing

    def readinto(self, buffer: Any) -> int:
        return self._cooperative.recv_into(buffer)

    def write(self, data: Any) -> int:
        return self._cooperative.send(data)

    def fileno(self) -> int:
        return self._cooperative.fileno()
