"""``DatagramServer``: receive UDP datagrams and run ``handle(data, address)`` for each.

    def echo(data, address):
        server.sendto(data, address)

    server = DatagramServer(("127.0.0.1", 0), echo)

Each datagram gets its own greenlet (so a handler may block), tracked like a
stream server's connections: ``pool=N`` bounds how many run at once, and the
serving greenlet stops reading while the pool is full (datagrams then queue in
the kernel's receive buffer, and past it are dropped, as UDP does).
"""

from __future__ import annotations

import socket
from typing import Any, Callable

from greenpatch.hub import Greenlet
from greenpatch.hub.pool import Group
from greenpatch.server._io import CooperativeSocket
from greenpatch.server.base import BaseServer, log, pool_from_spawn

__all__ = ["DatagramServer"]

#: The largest UDP payload over IPv4.
MAX_DATAGRAM = 65535


class DatagramServer(BaseServer):
    """A UDP server; ``sendto(data, address)`` answers from the bound socket."""

    socket_type = socket.SOCK_DGRAM

    def __init__(
        self,
        listener: Any,
        handle: Callable[[bytes, Any], Any] | None = None,
        spawn: Any = "default",
        *,
        pool: Group | int | None = None,
    ) -> None:
        # gevent's positional order (listener, handle, spawn); pool= is keyword-only.
        super().__init__(listener, pool_from_spawn(spawn, pool))
        if handle is not None:
            self.handle = handle  # type: ignore[method-assign,assignment]
        self._cooperative: CooperativeSocket | None = None

    def handle(self, data: bytes, address: Any) -> None:
        """Override in a subclass, or pass ``handle=`` to the constructor."""
        raise NotImplementedError(f"{type(self).__name__} needs a handle(data, address)")

    def init_socket(self) -> None:
        super().init_socket()
        if self._cooperative is None:
            assert self.socket is not None
            self._cooperative = CooperativeSocket(self.socket)

    def sendto(self, data: bytes, address: Any) -> int:
        """Send one datagram from the server's socket (waits if the send buffer is full)."""
        if self._cooperative is None:
            raise RuntimeError(f"{self!r} is not started")
        return self._cooperative.sendto(data, address)

    def _serve(self) -> None:
        sock = self._cooperative
        assert sock is not None
        pool = self.pool
        while True:
            if pool.full():
                pool.wait_available()
            try:
                data, address = sock.recvfrom(MAX_DATAGRAM)
            except ConnectionError as exc:
                # An ICMP error from an earlier sendto; the socket is still fine.
                log.debug("%s: %s", self, exc)
                continue
            pool.start(Greenlet(self._run_handler, self.handle, data, address))

    def _close_listener(self) -> None:
        if self._cooperative is not None:
            self._cooperative.close()  # wakes waiters, closes the socket
        super()._close_listener()
