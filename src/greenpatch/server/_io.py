"""``CooperativeSocket``: the socket a server hands to its handlers.

Why not the green socket of the patcher
---------------------------------------
The server room may import only the hub, and a server must work whether or not
the stdlib is patched.  So this is a small wrapper over a plain stdlib socket
(or ``ssl.SSLSocket``) kept non-blocking in the kernel.  Its blocking calls are
the hub's cooperative I/O core (``greenpatch.hub.socket_calls.CooperativeIO``), the same
one the green socket uses: try the system call, wait for readiness when it
would block, one deadline per call, ``sendall`` counted in bytes, the wait-first
guess after a short read on plain sockets, and a ``close()`` that wakes every
greenlet waiting on the descriptor.  What is the server's own here: the bare C
methods on the hot paths (whatever class the socket has), TLS want-errors
saying which way to wait, and ``recv_timeout``/``wait_readable`` for the
servers' header and idle deadlines.
"""

from __future__ import annotations

import _socket
import io
import ssl
from time import monotonic
from typing import Any, Callable

from greenpatch.hub.hub import hub_of_this_thread
from greenpatch.hub.io import (
    READ,
    WRITE,
    IoWaitQueue,
    SocketClosedError,
    SocketTimeout,
    yield_after_end_of_stream,
)
from greenpatch.hub.socket_calls import CooperativeIO

__all__ = ["CooperativeSocket", "SocketClosedError", "SocketTimeout"]

# The C socket type: the stdlib's ``socket.socket`` (or the patcher's green class,
# when the stdlib is patched) only adds Python-level wrappers above it, and the
# servers want the bare system calls on their hot paths.
RawSocket = _socket.socket
_raw_recv = RawSocket.recv
_UNSET: Any = object()
_HANDSHAKE_MESSAGES = ("TLS handshake timed out", "TLS handshake timed out")


class CooperativeSocket(CooperativeIO):
    """A non-blocking stdlib socket (or ``SSLSocket``) whose blocking calls wait on the hub.

    ``settimeout(None)`` (the default) waits forever; a number bounds each call
    and raises ``TimeoutError`` (``socket.timeout``).  Closing it wakes any
    greenlet blocked on it with ``SocketClosedError``.
    """

    __slots__ = (
        "_io_readers",
        "_io_short_read",
        "_io_timeout",
        "_io_writers",
        "_recv",
        "_recv_into",
        "_send",
        "_sock",
        "fd",
    )

    _io_would_block = (
        BlockingIOError,
        ssl.SSLWantReadError,
        ssl.SSLWantWriteError,
        InterruptedError,
    )
    _io_wants_write = (ssl.SSLWantWriteError,)
    _io_wants_read = (ssl.SSLWantReadError,)

    def __init__(self, sock: Any, timeout: float | None = None) -> None:
        RawSocket.setblocking(sock, False)
        self._sock: Any = sock
        self.fd: int = sock.fileno()
        self._recv: Callable[..., bytes]
        self._recv_into: Callable[..., int]
        self._send: Callable[..., int]
        if isinstance(sock, ssl.SSLSocket):
            cls = type(sock)
            self._recv, self._recv_into, self._send = cls.recv, cls.recv_into, cls.send
            self._io_short_read = None
        else:
            # The C methods: skips any Python-level override (a patched socket's).
            self._recv, self._recv_into, self._send = (
                RawSocket.recv,
                RawSocket.recv_into,
                RawSocket.send,
            )
            self._io_short_read = False
        self._io_timeout = timeout
        self._io_readers: IoWaitQueue | None = None
        self._io_writers: IoWaitQueue | None = None

    def fileno(self) -> int:
        return self.fd

    def wait_readable(self, timeout: float | None = _UNSET) -> None:
        """Block until there is something to read (or EOF); raise TimeoutError on timeout."""
        if timeout is _UNSET:
            timeout = self._io_timeout
        self._io_wait(READ, None if timeout is None else monotonic() + timeout)

    # -- timeout semantics -----------------------------------------------------
    def settimeout(self, value: float | None) -> None:
        if value is not None and value < 0:
            raise ValueError("Timeout value out of range")
        self._io_timeout = value

    def gettimeout(self) -> float | None:
        return self._io_timeout

    @property
    def timeout(self) -> float | None:
        return self._io_timeout

    # -- receiving and sending ---------------------------------------------------
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        short = self._io_short_read
        if flags or short is None or self._io_timeout is not None:
            return self._io_recv(bufsize, flags, self._recv, self._sock, bufsize, flags)  # type: ignore[no-any-return]
        # The hot path of every handler: a plain socket without a timeout.
        # CooperativeIO._io_recv's work (wait first after a short read, then
        # read) in this one call; anything unusual goes back to it.
        if short:
            queue = self._io_readers
            if queue is not None and queue.hub is hub_of_this_thread():
                queue.wait()
            else:
                self._io_wait(READ)
        try:
            data: bytes = _raw_recv(self._sock, bufsize)
        except self._io_would_block:
            self._io_short_read = True  # so that _io_recv waits before it tries again
            return self._io_recv(bufsize, 0, _raw_recv, self._sock, bufsize)  # type: ignore[no-any-return]
        self._io_short_read = 0 < len(data) < bufsize
        if not data and bufsize:
            yield_after_end_of_stream()  # which a loop may read again
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        size = nbytes or len(buffer)
        return self._io_recv(size, flags, self._recv_into, self._sock, buffer, nbytes, flags)  # type: ignore[no-any-return]

    def recv_timeout(self, bufsize: int, timeout: float | None) -> bytes:
        """``recv`` with its own timeout (the servers' header and idle deadlines).

        A deadline already past (``timeout <= 0``) still takes what is there,
        and raises ``TimeoutError`` rather than ``BlockingIOError`` when nothing is.
        """
        recv, sock = self._recv, self._sock
        if timeout is not None and timeout <= 0:
            try:
                return self._io_recv(bufsize, 0, recv, sock, bufsize, 0, timeout=0.0)  # type: ignore[no-any-return]
            except self._io_would_block:
                raise SocketTimeout("timed out") from None
        return self._io_recv(bufsize, 0, recv, sock, bufsize, 0, timeout=timeout)  # type: ignore[no-any-return]

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        return self._io_call(READ, flags, self._sock.recvfrom, bufsize, flags)  # type: ignore[no-any-return]

    def send(self, data: Any, flags: int = 0) -> int:
        return self._io_call(WRITE, flags, self._send, self._sock, data, flags)  # type: ignore[no-any-return]

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send everything; the timeout bounds the whole call, as in the stdlib."""
        if flags or type(data) is not bytes:
            self._io_sendall(self._send, self._sock, data, flags)
            return
        # The hot path: bytes that the kernel takes in one call
        # (CooperativeIO._io_sendall's first try, in this one call).
        send = self._send
        try:
            sent = send(self._sock, data)
        except self._io_would_block:
            if self._io_timeout == 0.0:
                raise
            sent = 0
        else:
            if sent == len(data):
                return
        self._io_sendall_rest(send, self._sock, data, sent, 0, 0)

    def sendto(self, data: Any, address: Any) -> int:
        return self._io_call(WRITE, 0, self._sock.sendto, data, address)  # type: ignore[no-any-return]

    # -- TLS -------------------------------------------------------------------
    def do_handshake(self, timeout: float | None) -> None:
        """Finish the TLS handshake of a wrapped socket, waiting on the hub as it asks."""
        sock = self._sock
        if not isinstance(sock, ssl.SSLSocket):
            raise TypeError("do_handshake needs a socket wrapped by an SSLContext")
        try:
            self._io_call(READ, 0, sock.do_handshake, timeout=timeout, messages=_HANDSHAKE_MESSAGES)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            # A timeout of 0 gives up at the first want, as a deadline already past.
            raise SocketTimeout(_HANDSHAKE_MESSAGES[0]) from None

    # -- the rest of the socket API --------------------------------------------
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
        self._io_cancel_waits(SocketClosedError())
        self.fd = -1
        self._sock.close()

    def __enter__(self) -> CooperativeSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CooperativeSocket fd={self.fd} timeout={self._io_timeout}>"


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
