"""``greenpatch.socket``: the cooperative socket module, as ``gevent.socket``.

The cooperative names are the patcher's green twins (the same objects
``patch_all()`` puts into :mod:`socket`), usable without patching anything;
every other name (constants, exceptions, helpers) is the standard library's.
"""

from __future__ import annotations

import socket as _stdlib
from typing import Any

from greenpatch.hub.io import cancel_fd_waits, wait_read, wait_write
from greenpatch.patcher.green.socket import (
    create_connection,
    create_server,
    fromfd,
    getaddrinfo,
    gethostbyaddr,
    gethostbyname,
    gethostbyname_ex,
    getnameinfo,
    socket,
    socketpair,
)

SocketType = socket

__all__ = [
    "SocketType",
    "cancel_fd_waits",
    "cancel_wait",
    "create_connection",
    "create_server",
    "fromfd",
    "getaddrinfo",
    "gethostbyaddr",
    "gethostbyname",
    "gethostbyname_ex",
    "getnameinfo",
    "socket",
    "socketpair",
    "wait_read",
    "wait_readwrite",
    "wait_write",
]


def wait_readwrite(
    fd: int, timeout: float | None = None, timeout_exc: Any = "timed out", event: object = None
) -> None:
    """gevent's ``wait_readwrite``: block until ``fd`` is readable or writable.

    A descriptor is writable far more often than readable, so this returns as
    soon as writing would not block (which is what gevent's wait does too).
    """
    wait_write(fd, timeout, timeout_exc)


def cancel_wait(watcher: Any, error: Any = None) -> None:
    """gevent's ``cancel_wait(watcher, error)`` takes a libev watcher; greenpatch has
    none to hand out.  Wake the waiters of a descriptor with ``cancel_fd_waits``."""
    raise TypeError(
        "greenpatch.socket.cancel_wait takes no watcher: call "
        "greenpatch.socket.cancel_fd_waits(fd, error) to wake the greenlets waiting on fd"
    )


def __getattr__(name: str) -> Any:
    # Everything the green twin does not replace is the standard library's.
    return getattr(_stdlib, name)
