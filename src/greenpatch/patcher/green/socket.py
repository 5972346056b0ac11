"""Green ``socket``: a socket class whose blocking calls wait on the hub.

How it works
------------
``socket`` subclasses the stdlib ``socket.socket`` (so ``isinstance`` checks,
``SocketType``, ``makefile``, ``dup`` and the rest keep working).  The timeout
the user sets is stored on the Python object.  Every blocking call goes through
the hub's cooperative I/O core (``greenpatch.hub.socket_calls.CooperativeIO``): try the
system call without blocking; when the kernel says "would block", a timeout of
0 re-raises as the stdlib would, otherwise the greenlet waits in the
descriptor's wait queue (any number of greenlets may wait on one socket, each
woken in turn, as threads are) and tries again, under one deadline per call,
then ``socket.timeout``.

The kernel descriptor keeps the stdlib's blocking mode
-------------------------------------------------------
``O_NONBLOCK`` belongs to the open file description, which every copy of the
descriptor shares: a ``detach()``-ed descriptor (``multiprocessing.Pipe``), a
``dup``, a descriptor handed to a child process.  So the descriptor is exactly
as the stdlib would leave it -- blocking while the timeout is None,
non-blocking otherwise -- and a blocking one is never *called* in a way that
blocks: reads and writes pass ``MSG_DONTWAIT`` (a per-call flag), and
``accept``/``connect``/``sendfile``, which take no such flag, switch the
descriptor to non-blocking for the one system call.  Rejected: keeping the
descriptor non-blocking for good (the first design): every process and library
the descriptor reaches then sees ``EAGAIN`` where it expects to block.  TLS
sockets are the exception (``_kernel_always_nonblocking``): OpenSSL calls
``read``/``write`` itself, without our flag.

Closing a socket wakes every greenlet blocked on its descriptor with ``EBADF``
instead of leaving them hanging (or waking them on whatever reuses the number).

Host names in addresses are resolved through the green resolver before
``connect``/``sendto`` reach the kernel (the C code would otherwise call the
blocking ``getaddrinfo``).
"""

from __future__ import annotations

import errno
import os
import socket as _stdlib
import sys
from collections.abc import Callable
from time import monotonic
from typing import Any, TypeVar

# Imported here, before the registry swaps socket's functions: the resolver
# binds the original ones at its import.
from greenpatch.hub import resolver as _resolver
from greenpatch.hub.hub import hub_of_this_thread
from greenpatch.hub.io import (
    READ,
    WRITE,
    SocketTimeout,
    yield_after_end_of_stream,
)
from greenpatch.hub.socket_calls import CooperativeIO

__target__ = "socket"
__implements__ = [
    "socket",
    "create_connection",
    "create_server",
    "socketpair",
    "fromfd",
    "getaddrinfo",
    "gethostbyname",
    "gethostbyname_ex",
    "gethostbyaddr",
    "getnameinfo",
]

_T = TypeVar("_T")

# The stdlib class and the C methods underneath it, bound once: these are what
# we call after the registry has replaced ``socket.socket`` with ours.
_StdlibSocket = _stdlib.socket
_C: Any = _stdlib.socket.__mro__[1]  # _socket.socket
_c_recv: Callable[..., bytes] = _C.recv
_c_recv_into: Callable[..., int] = _C.recv_into
_c_recvfrom: Callable[..., tuple[bytes, Any]] = _C.recvfrom
_c_recvfrom_into: Callable[..., tuple[int, Any]] = _C.recvfrom_into
_c_send: Callable[..., int] = _C.send
_c_sendto: Callable[..., int] = _C.sendto
_c_connect_ex: Callable[..., int] = _C.connect_ex
_c_settimeout = _C.settimeout
_c_gettimeout = _C.gettimeout
_c_close = _C.close
_c_detach = _C.detach
_c_recvmsg: Any = getattr(_C, "recvmsg", None)
_c_sendmsg: Any = getattr(_C, "sendmsg", None)
_c_recvmsg_into: Any = getattr(_C, "recvmsg_into", None)
_c_socketpair = sys.modules["_socket"].socketpair
_c_accept: Callable[..., tuple[int, Any]] = _C._accept
_c_type: Any = _C.type
_getdefaulttimeout = _stdlib.getdefaulttimeout
_CONNECT_PENDING = {errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK, errno.EAGAIN}
# The per-call "do not block" flag; where the platform has none, descriptors
# stay non-blocking for good (the only way left to keep the hub running).
# A plain int: socket.MSG_DONTWAIT is an IntFlag member, and ``flags | member``
# goes through enum's Python-level __or__ (a microsecond per call).
_DONTWAIT: int = int(getattr(_stdlib, "MSG_DONTWAIT", 0))


class socket(_StdlibSocket, CooperativeIO):
    """A cooperative ``socket.socket`` with the stdlib's timeout semantics."""

    __slots__ = ("_io_dontwait", "_io_readers", "_io_short_read", "_io_timeout", "_io_writers")

    #: Whether the kernel descriptor is non-blocking whatever the timeout (TLS).
    _kernel_always_nonblocking = False

    def __init__(
        self,
        family: int = -1,
        type: int = -1,
        proto: int = -1,
        fileno: int | None = None,
    ) -> None:
        super().__init__(family, type, proto, fileno)
        # The C constructor applied the default timeout (or 0.0 for a
        # SOCK_NONBLOCK type) and set the descriptor's mode to match, as the
        # stdlib does; adopt that.
        timeout = self._io_timeout = _c_gettimeout(self)
        self._io_readers = self._io_writers = None
        # The wait-first-after-a-short-read guess (CooperativeIO._io_recv) is
        # for stream sockets.  (TLS reads do not go through it: see green ssl.)
        self._io_short_read = False if _c_type.__get__(self) == _stdlib.SOCK_STREAM else None
        if timeout is None and _DONTWAIT and not self._kernel_always_nonblocking:
            self._io_dontwait = _DONTWAIT
        else:
            self._io_dontwait = 0
            if timeout != 0.0:
                # The C calls must never wait themselves: with a default
                # timeout (socket.setdefaulttimeout) the C socket kept it, and
                # its accept/recv/send polled for that long, holding the hub.
                _c_settimeout(self, 0.0)

    def _set_kernel_mode(self, timeout: float | None) -> None:
        """Give the descriptor the stdlib's mode for ``timeout`` (an ioctl, as the
        stdlib: a bad descriptor raises OSError)."""
        if timeout is None and _DONTWAIT and not self._kernel_always_nonblocking:
            _c_settimeout(self, None)
            self._io_dontwait = _DONTWAIT
        else:
            _c_settimeout(self, 0.0)
            self._io_dontwait = 0

    def _nonblocking_call(self, call: Callable[..., _T], *args: Any) -> _T:
        """``call(*args)`` with the descriptor non-blocking for that one system call
        (for the calls that take no MSG_DONTWAIT)."""
        if not self._io_dontwait:
            return call(*args)
        _c_settimeout(self, 0.0)
        try:
            return call(*args)
        finally:
            _c_settimeout(self, None)

    # -- timeout semantics (stdlib-identical, kept on the Python side) --------
    def settimeout(self, value: float | None) -> None:
        if value is not None:
            value = float(value)
            if value != value:  # NaN
                raise ValueError("Invalid value NaN (not a number)")
            if value < 0.0:
                raise ValueError("Timeout value out of range")
        self._set_kernel_mode(value)
        self._io_timeout = value

    def gettimeout(self) -> float | None:
        return self._io_timeout

    def setblocking(self, flag: bool) -> None:
        timeout = None if flag else 0.0
        self._set_kernel_mode(timeout)
        self._io_timeout = timeout

    def getblocking(self) -> bool:
        return self._io_timeout != 0.0

    @property
    def timeout(self) -> float | None:
        return self._io_timeout

    # -- receiving ---------------------------------------------------------------
    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        short = self._io_short_read
        if flags or short is None or self._io_timeout is not None:
            return self._io_recv(bufsize, flags, _c_recv, self, bufsize, flags | self._io_dontwait)  # type: ignore[no-any-return]
        # The hot path (a stream socket without a timeout): CooperativeIO._io_recv's
        # work in this one call, as the servers' CooperativeSocket.recv does.
        if short:
            queue = self._io_readers
            if queue is not None and queue.hub is hub_of_this_thread():
                queue.wait()
            else:
                self._io_wait(READ)
        try:
            data = _c_recv(self, bufsize, self._io_dontwait)
        except BlockingIOError:
            self._io_short_read = True  # so that _io_recv waits before it tries again
            return self._io_recv(bufsize, 0, _c_recv, self, bufsize, self._io_dontwait)  # type: ignore[no-any-return]
        self._io_short_read = 0 < len(data) < bufsize
        if not data and bufsize:
            yield_after_end_of_stream()  # which a loop may read again
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        size = nbytes or len(buffer)
        return self._io_recv(  # type: ignore[no-any-return]
            size, flags, _c_recv_into, self, buffer, nbytes, flags | self._io_dontwait
        )

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        return self._io_call(READ, flags, _c_recvfrom, self, bufsize, flags | self._io_dontwait)  # type: ignore[no-any-return]

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        return self._io_call(  # type: ignore[no-any-return]
            READ, flags, _c_recvfrom_into, self, buffer, nbytes, flags | self._io_dontwait
        )

    if _c_recvmsg is not None:

        def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0) -> Any:
            return self._io_call(
                READ, flags, _c_recvmsg, self, bufsize, ancbufsize, flags | self._io_dontwait
            )

        def recvmsg_into(self, buffers: Any, ancbufsize: int = 0, flags: int = 0) -> Any:
            return self._io_call(
                READ, flags, _c_recvmsg_into, self, buffers, ancbufsize, flags | self._io_dontwait
            )

    # -- sending -------------------------------------------------------------------
    def send(self, data: Any, flags: int = 0) -> int:
        return self._io_call(WRITE, flags, _c_send, self, data, flags | self._io_dontwait)  # type: ignore[no-any-return]

    def sendall(self, data: Any, flags: int = 0) -> None:
        dontwait = self._io_dontwait
        if flags or type(data) is not bytes:
            self._io_sendall(_c_send, self, data, flags, dontwait)
            return
        # The hot path: bytes the kernel takes in one call (as CooperativeSocket).
        try:
            sent = _c_send(self, data, dontwait)
        except BlockingIOError:
            if self._io_timeout == 0.0:
                raise
            sent = 0
        else:
            if sent == len(data):
                return
        self._io_sendall_rest(_c_send, self, data, sent, 0, dontwait)

    def sendto(self, *args: Any) -> int:
        if len(args) == 2:
            data, address = args
            flags = 0
        elif len(args) == 3:
            data, flags, address = args
        else:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args)} given)")
        address = self._resolve(address)
        return self._io_call(  # type: ignore[no-any-return]
            WRITE, flags, _c_sendto, self, data, flags | self._io_dontwait, address
        )

    if _c_sendmsg is not None:

        def sendmsg(
            self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None
        ) -> int:
            call_flags = flags | self._io_dontwait
            if address is None:
                return int(
                    self._io_call(WRITE, flags, _c_sendmsg, self, buffers, ancdata, call_flags)
                )
            return int(
                self._io_call(WRITE, flags, _c_sendmsg, self, buffers, ancdata, call_flags, address)
            )

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Like the stdlib: ``os.sendfile`` when possible, else ``send`` in chunks."""
        try:
            return self._gp_sendfile(file, offset, count)
        except _stdlib._GiveupOnSendfile:  # type: ignore[attr-defined]
            sent: int = self._sendfile_use_send(file, offset, count)  # type: ignore[attr-defined]
            return sent

    def _gp_sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        if not hasattr(os, "sendfile"):
            raise _stdlib._GiveupOnSendfile("os.sendfile() not available")  # type: ignore[attr-defined]
        self._check_sendfile_params(file, offset, count)  # type: ignore[attr-defined]
        sock_fd = self.fileno()
        try:
            file_fd = file.fileno()
        except (AttributeError, OSError) as exc:
            raise _stdlib._GiveupOnSendfile(exc) from exc  # type: ignore[attr-defined]
        try:
            file_size = os.fstat(file_fd).st_size
        except OSError as exc:
            raise _stdlib._GiveupOnSendfile(exc) from exc  # type: ignore[attr-defined]
        if not file_size:
            return 0
        timeout = self._io_timeout
        if timeout == 0.0:
            raise ValueError("non-blocking sockets are not supported")
        deadline = None if timeout is None else monotonic() + timeout
        total_sent = 0
        blocksize = min(count or file_size, 2**30)
        try:
            while True:
                if count:
                    blocksize = min(count - total_sent, blocksize)
                    if blocksize <= 0:
                        break
                try:
                    sent = self._nonblocking_call(os.sendfile, sock_fd, file_fd, offset, blocksize)
                except BlockingIOError:
                    self._io_wait(WRITE, deadline)
                    continue
                except OSError as exc:
                    if total_sent == 0:
                        # Not a file os.sendfile can take (e.g. a pipe): fall back.
                        raise _stdlib._GiveupOnSendfile(exc) from exc  # type: ignore[attr-defined]
                    raise
                if sent == 0:
                    break
                offset += sent
                total_sent += sent
            return total_sent
        finally:
            if total_sent > 0 and hasattr(file, "seek"):
                file.seek(offset)

    # The stdlib's, called by name by code and tests, would make a blocking
    # os.sendfile call on a blocking descriptor: the whole file with the
    # thread stopped.
    _sendfile_use_sendfile = _gp_sendfile

    # -- connecting and accepting ------------------------------------------------
    def _resolve(self, address: Any) -> Any:
        """Resolve a host name in an inet address cooperatively (numeric ones pass)."""
        if (
            isinstance(address, tuple)
            and len(address) >= 2
            and self.family in (_stdlib.AF_INET, _stdlib.AF_INET6)
            and isinstance(address[0], (str, bytes))
        ):
            host = address[0].decode("idna") if isinstance(address[0], bytes) else address[0]
            if host and not _is_numeric_host(host):
                infos = getaddrinfo(host, address[1], self.family, self.type, self.proto)
                if not infos:
                    raise _stdlib.gaierror(_stdlib.EAI_NONAME, "Name or service not known")
                resolved = infos[0][4]
                return (resolved[0], *address[1:])
        return address

    def connect(self, address: Any) -> None:
        error = self._connect(address)
        if error:
            raise OSError(error, os.strerror(error))

    def connect_ex(self, address: Any) -> int:
        try:
            return self._connect(address)
        except SocketTimeout:
            return errno.EAGAIN
        except OSError as exc:
            if isinstance(exc, _stdlib.gaierror) or not exc.errno:
                raise
            return exc.errno

    def _connect(self, address: Any) -> int:
        address = self._resolve(address)
        timeout = self._io_timeout
        error = self._nonblocking_call(_c_connect_ex, self, address)
        if error == 0 or error == errno.EISCONN:
            return 0
        if error not in _CONNECT_PENDING or timeout == 0.0:
            if timeout == 0.0 and error in _CONNECT_PENDING:
                raise BlockingIOError(error, os.strerror(error))
            return error
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            self._io_wait(WRITE, deadline)
            error = self.getsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_ERROR)
            if error in _CONNECT_PENDING:
                continue  # spurious wake-up
            if error == 0 and self.family == getattr(_stdlib, "AF_UNIX", -1):
                # A full unix listen backlog answers EAGAIN; retry the connect.
                error = self._nonblocking_call(_c_connect_ex, self, address)
                if error in _CONNECT_PENDING:
                    continue
                return 0 if error in (0, errno.EISCONN) else error
            return int(error)

    def accept(self) -> tuple[socket, Any]:
        fd, address = self._io_call(READ, 0, self._nonblocking_call, _c_accept, self)
        sock = socket(self.family, self.type, self.proto, fileno=fd)
        # As the stdlib: a listening socket with a timeout hands out blocking
        # sockets unless a default timeout is set.
        if _getdefaulttimeout() is None and self._io_timeout:
            sock.setblocking(True)
        return sock, address

    # -- closing -------------------------------------------------------------------
    def _real_close(self, _ss: Any = _C) -> None:
        # Everyone waiting on the descriptor (on this socket, in select(), in
        # wait_read) is woken with EBADF before the number can be reused.
        self._io_cancel_waits()
        _c_close(self)

    def detach(self) -> int:
        self._closed = True  # as the stdlib's detach()
        self._io_cancel_waits()
        return int(_c_detach(self))

    def dup(self) -> socket:
        fd = _stdlib.dup(self.fileno())
        sock = socket(self.family, self.type, self.proto, fileno=fd)
        sock.settimeout(self.gettimeout())
        return sock


# The stdlib's repr shows the class's module and name; so do we, so that users,
# logs and tests see the same "<socket.socket fd=...>" whether patched or not.
socket.__module__ = "socket"
socket.__qualname__ = "socket"


def _is_numeric_host(host: str) -> bool:
    for family in (_stdlib.AF_INET, _stdlib.AF_INET6):
        try:
            _stdlib.inet_pton(family, host.split("%", 1)[0])
        except (OSError, ValueError):
            continue
        return True
    return False


_STDLIB_ORIGINALS = {"socket": _StdlibSocket, "getaddrinfo": _stdlib.getaddrinfo}


def _late(name: str, ours: _T) -> _T:
    """``socket.<name>`` as it is now, as the stdlib looks it up at call time (tests
    and users replace ``socket.socket``); ours while it is still the original."""
    current = getattr(_stdlib, name)
    return ours if current is _STDLIB_ORIGINALS[name] else current


# -- constructors -------------------------------------------------------------------
def socketpair(
    family: int = getattr(_stdlib, "AF_UNIX", _stdlib.AF_INET),
    type: int = _stdlib.SOCK_STREAM,
    proto: int = 0,
) -> tuple[socket, socket]:
    """A connected pair of green sockets."""
    a, b = _c_socketpair(family, type, proto)
    return (
        socket(family, type, proto, a.detach()),
        socket(family, type, proto, b.detach()),
    )


def fromfd(fd: int, family: int, type: int, proto: int = 0) -> socket:
    """A green socket over a duplicate of ``fd``."""
    return socket(family, type, proto, os.dup(fd))


def create_connection(
    address: tuple[str, int],
    timeout: float | Any | None = _stdlib._GLOBAL_DEFAULT_TIMEOUT,  # type: ignore[attr-defined]
    source_address: tuple[str, int] | None = None,
    *,
    all_errors: bool = False,
) -> _StdlibSocket:
    """Connect to ``(host, port)`` trying each resolved address, as the stdlib does."""
    host, port = address
    errors: list[Exception] = []
    for family, socktype, proto, _canonname, sockaddr in _late("getaddrinfo", getaddrinfo)(
        host, port, 0, _stdlib.SOCK_STREAM
    ):
        sock = None
        try:
            sock = _late("socket", socket)(family, socktype, proto)
            if timeout is not _stdlib._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            errors.clear()
            return sock
        except OSError as exc:
            errors.append(exc)
            if sock is not None:
                sock.close()
    if not errors:
        raise OSError("getaddrinfo returns an empty list")
    if all_errors and sys.version_info >= (3, 11):
        raise ExceptionGroup("create_connection failed", errors)  # noqa: F821
    raise errors[0]


def create_server(
    address: tuple[str, int],
    *,
    family: int = _stdlib.AF_INET,
    backlog: int | None = None,
    reuse_port: bool = False,
    dualstack_ipv6: bool = False,
) -> _StdlibSocket:
    """A green listening socket bound to ``address`` (the stdlib's options)."""
    if reuse_port and not hasattr(_stdlib, "SO_REUSEPORT"):
        raise ValueError("SO_REUSEPORT not supported on this platform")
    if dualstack_ipv6:
        if not _stdlib.has_dualstack_ipv6():
            raise ValueError("dualstack_ipv6 not supported on this platform")
        if family != _stdlib.AF_INET6:
            raise ValueError("dualstack_ipv6 requires AF_INET6 family")
    sock = _late("socket", socket)(family, _stdlib.SOCK_STREAM)
    try:
        if os.name not in ("nt", "cygwin") and hasattr(_stdlib, "SO_REUSEADDR"):
            sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_REUSEPORT, 1)
        if family == _stdlib.AF_INET6 and hasattr(_stdlib, "IPPROTO_IPV6"):
            sock.setsockopt(_stdlib.IPPROTO_IPV6, _stdlib.IPV6_V6ONLY, 0 if dualstack_ipv6 else 1)
        try:
            sock.bind(address)
        except OSError as exc:
            raise OSError(
                exc.errno, f"{exc.strerror} (while attempting to bind on address {address!r})"
            ) from None
        if backlog is None:
            sock.listen()
        else:
            sock.listen(backlog)
        return sock
    except BaseException:
        sock.close()
        raise


# -- name resolution (on the hub's threadpool, see greenpatch.hub.resolver) -------
def getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list[tuple[Any, ...]]:
    return _resolver.getaddrinfo(host, port, family, type, proto, flags)


def gethostbyname(hostname: str) -> str:
    return _resolver.gethostbyname(hostname)


def gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
    return _resolver.gethostbyname_ex(hostname)


def gethostbyaddr(ip_address: str) -> tuple[str, list[str], list[str]]:
    return _resolver.gethostbyaddr(ip_address)


def getnameinfo(sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
    return _resolver.getnameinfo(sockaddr, flags)
