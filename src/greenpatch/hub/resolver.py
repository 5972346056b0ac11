"""``Resolver``: the stdlib's name lookups, run on the hub's threadpool.

``getaddrinfo`` and friends block in the C library (DNS, NSS, /etc/hosts) and
offer no descriptor to wait on.  Here each lookup runs on a worker thread of the
calling hub's ``ThreadPool`` while the greenlet waits cooperatively, so other
greenlets keep running.

Originals, bound at import
--------------------------
A patcher will replace ``socket.getaddrinfo`` and the others with the functions
of this module.  The resolver must then still reach the C library, not itself,
so it captures the original functions when this module is imported (before any
patching, since the hub never imports the patcher) in ``_originals``.

Rejected: a resolver of our own speaking DNS (as gevent's ``ares`` and ``dnspython``
resolvers do).  It would have to re-implement nsswitch, /etc/hosts, search
domains and the platform's quirks; the threadpool keeps the system's exact
behaviour at the cost of one thread hop per lookup.

When no thread is used
----------------------
* In a thread without a hub: no greenlet can be starved, so the call is made
  directly instead of creating a hub just to wait.
* In the hub greenlet itself (a loop callback) nothing can wait; the call is
  made directly, as ``ThreadPool.apply`` does.
* Numeric hosts with numeric (or no) ports for ``getaddrinfo`` and
  ``gethostbyname``: the C library only parses them, so a thread hop would cost
  more than the call.  This is the common case of ``connect(("127.0.0.1", port))``.
"""

from __future__ import annotations

# The first lookup of a non-ASCII name encodes it with the "idna" codec, which
# imports encodings.idna.  Doing that in a worker thread while the hub's thread
# holds the import lock (a lookup at import time of a module) would deadlock;
# importing the codec here is cheap and removes the case.
import encodings.idna  # noqa: F401
import socket
from typing import Any, Callable

from greenlet import getcurrent

from greenpatch.hub.hub import get_hub_if_exists
from greenpatch.hub.threadpool import ThreadPool, get_threadpool

__all__ = [
    "Resolver",
    "getaddrinfo",
    "gethostbyaddr",
    "gethostbyname",
    "gethostbyname_ex",
    "getnameinfo",
]

_NAMES = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo")

#: The unpatched ``socket`` functions, captured at import.
_originals: dict[str, Callable[..., Any]] = {name: getattr(socket, name) for name in _NAMES}

_ADDRESS_FAMILIES = (socket.AF_INET, socket.AF_INET6)


def _is_numeric_host(host: object) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            return False
    if not isinstance(host, str):
        return False
    for family in _ADDRESS_FAMILIES:
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return True
    return False


def _is_numeric_port(port: object) -> bool:
    if port is None or isinstance(port, int):
        return True
    if isinstance(port, (str, bytes)):
        return port.isdigit()
    return False


class Resolver:
    """Name lookups that wait cooperatively; signatures as in ``socket``.

    ``threadpool``: the pool to run lookups on; by default the calling hub's
    ``get_threadpool()``.  A pool given here must belong to the hub of the
    threads that use this resolver.
    """

    def __init__(self, threadpool: ThreadPool | None = None) -> None:
        self.threadpool = threadpool

    def _run(self, name: str, *args: Any) -> Any:
        function = _originals[name]
        hub = get_hub_if_exists()
        if hub is None or getcurrent() is hub:
            return function(*args)
        pool = self.threadpool if self.threadpool is not None else get_threadpool()
        return pool.spawn(function, *args).get()

    def getaddrinfo(
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,  # the stdlib's parameter name
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]]:
        if _is_numeric_host(host) and _is_numeric_port(port):
            return _originals["getaddrinfo"](host, port, family, type, proto, flags)  # type: ignore[no-any-return]
        return self._run("getaddrinfo", host, port, family, type, proto, flags)  # type: ignore[no-any-return]

    def gethostbyname(self, hostname: str) -> str:
        if _is_numeric_host(hostname) and hostname is not None:
            return _originals["gethostbyname"](hostname)  # type: ignore[no-any-return]
        return self._run("gethostbyname", hostname)  # type: ignore[no-any-return]

    def gethostbyname_ex(self, hostname: str) -> tuple[str, list[str], list[str]]:
        return self._run("gethostbyname_ex", hostname)  # type: ignore[no-any-return]

    def gethostbyaddr(self, ip_address: str) -> tuple[str, list[str], list[str]]:
        return self._run("gethostbyaddr", ip_address)  # type: ignore[no-any-return]

    def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
        return self._run("getnameinfo", sockaddr, flags)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<Resolver threadpool={self.threadpool!r}>"


# Holds no state of its own (the pool is looked up per call), so making it at
# import creates nothing.
_default_resolver = Resolver()


def getaddrinfo(
    host: bytes | str | None,
    port: bytes | str | int | None,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> list[tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]]:
    """``socket.getaddrinfo`` that lets other greenlets run during the lookup."""
    return _default_resolver.getaddrinfo(host, port, family, type, proto, flags)


def gethostbyname(hostname: str) -> str:
    """``socket.gethostbyname`` that lets other greenlets run during the lookup."""
    return _default_resolver.gethostbyname(hostname)


def gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]:
    """``socket.gethostbyname_ex`` that lets other greenlets run during the lookup."""
    return _default_resolver.gethostbyname_ex(hostname)


def gethostbyaddr(ip_address: str) -> tuple[str, list[str], list[str]]:
    """``socket.gethostbyaddr`` that lets other greenlets run during the lookup."""
    return _default_resolver.gethostbyaddr(ip_address)


def getnameinfo(sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
    """``socket.getnameinfo`` that lets other greenlets run during the lookup."""
    return _default_resolver.getnameinfo(sockaddr, flags)
