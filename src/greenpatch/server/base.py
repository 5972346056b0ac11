"""``BaseServer``: what every server shares — the listener, the life cycle, the handlers.

Life cycle
----------
``start()`` binds (if given an address) and starts the serving greenlet;
``serve_forever()`` starts and then blocks until ``stop()``; ``stop(timeout)``
stops taking new work, lets the handlers that run finish for up to ``timeout``
seconds, kills the rest and closes the listener.  ``close()`` is ``stop(0)``.

Why handlers live in a ``Group`` even without a bound
-----------------------------------------------------
``stop`` has to find the handlers to wait for and kill, so every handler is
tracked.  A bound (``pool=N``) makes the group a ``Pool``: the serving greenlet
waits for a free slot *before* it accepts, so extra clients queue in the
kernel's backlog instead of in memory.

Errors in a handler are logged to the ``greenpatch.server`` logger and never
reach the serving greenlet: one bad client must not stop the server.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from greenpatch.hub import Greenlet, GreenletExit, cancel_fd_waits
from greenpatch.hub import spawn as hub_spawn
from greenpatch.hub.pool import Group, Pool

__all__ = ["BaseServer", "log", "parse_address", "pool_from_spawn"]

log = logging.getLogger("greenpatch.server")

#: Seconds ``stop()`` waits for handlers when no timeout is given.
DEFAULT_STOP_TIMEOUT = 1.0


def _make_pool(pool: Group | int | None) -> Group:
    if pool is None:
        return Group()
    if isinstance(pool, Group):
        return pool
    if isinstance(pool, int) and not isinstance(pool, bool):
        return Pool(pool)
    raise TypeError(f"pool must be None, a positive int or a Group/Pool, not {pool!r}")


def pool_from_spawn(spawn: Any, pool: Group | int | None) -> Group | int | None:
    """Read gevent's ``spawn=`` argument as greenpatch's ``pool=``.

    gevent's servers take ``spawn``: ``"default"`` (a greenlet per connection),
    an int (a pool of that size) or a pool; greenpatch calls the same thing
    ``pool``.  Both at once is ambiguous, so it is refused.
    """
    if isinstance(spawn, str) and spawn == "default":
        return pool
    if pool is not None:
        raise TypeError("pass either spawn= (gevent's name) or pool=, not both")
    if isinstance(spawn, Group) or (isinstance(spawn, int) and not isinstance(spawn, bool)):
        return spawn
    owner = getattr(spawn, "__self__", None)
    if isinstance(owner, Group) and getattr(spawn, "__name__", None) == "spawn":
        return owner  # spawn=pool.spawn: the pool itself
    if spawn == Greenlet.spawn or spawn is hub_spawn:
        return None  # greenpatch.spawn / Greenlet.spawn: one greenlet per connection
    raise TypeError(
        f"spawn={spawn!r} is not supported: pass 'default', an int or a "
        "greenpatch Pool/Group (greenpatch always runs each connection in its own greenlet)"
    )


def parse_address(address: Any) -> tuple[str, int]:
    """``(host, port)``, ``"host:port"`` or ``":port"`` as ``(host, port)``."""
    if isinstance(address, tuple) and len(address) == 2:
        return str(address[0]), int(address[1])
    if isinstance(address, str):
        host, sep, port = address.rpartition(":")
        if sep and port.isdigit():
            return host.strip("[]") or "0.0.0.0", int(port)
    raise ValueError(f"expected (host, port) or 'host:port', not {address!r}")


class BaseServer:
    """Shared by ``StreamServer`` and ``DatagramServer``; not used directly."""

    #: The socket type a subclass binds to.
    socket_type = socket.SOCK_STREAM

    def __init__(
        self, listener: Any, pool: Group | int | None = None, backlog: int | None = None
    ) -> None:
        self.pool = _make_pool(pool)
        self.backlog = backlog
        self.socket: socket.socket | None = None
        self._address: Any = None
        if isinstance(listener, socket.socket):
            if listener.type != self.socket_type:
                raise TypeError(
                    f"{type(self).__name__} needs a socket of type {self.socket_type!r}"
                )
            self.socket = listener
        else:
            self._address = parse_address(listener)
        self._serving: Greenlet | None = None
        self._stopped_event: Any = None
        self._closed = False

    # -- the listener ------------------------------------------------------------
    def _bind(self) -> socket.socket:
        host, port = self._address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, self.socket_type)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            if self.socket_type == socket.SOCK_STREAM:
                sock.listen(self.backlog or 1024)
        except BaseException:
            sock.close()
            raise
        return sock

    @property
    def address(self) -> Any:
        """The bound address (with the real port when port 0 was asked for)."""
        if self.socket is not None and self.socket.fileno() >= 0:
            return self.socket.getsockname()
        return self._address

    @property
    def server_host(self) -> str:
        return str(self.address[0])

    @property
    def server_port(self) -> int:
        return int(self.address[1])

    # -- life cycle ----------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._serving is not None and not self._serving.dead

    @property
    def closed(self) -> bool:
        return self._closed

    def init_socket(self) -> None:
        """Bind the listener now (``start`` calls it); lets a caller read ``address`` early."""
        if self._closed:
            raise RuntimeError(f"{self!r} is closed; create a new server")
        if self.socket is None:
            self.socket = self._bind()
        elif self.socket_type == socket.SOCK_STREAM and self.backlog is not None:
            self.socket.listen(self.backlog)
        self.socket.setblocking(False)

    def start(self) -> None:
        """Bind if needed and start serving in a greenlet; returns at once."""
        if self.started:
            return
        self.init_socket()
        self._serving = Greenlet.spawn(self._serve)
        self._serving.name = f"{type(self).__name__}-serve"

    def serve_forever(self, stop_timeout: float | None = None) -> None:
        """Start, then block until ``stop()`` is called from another greenlet."""
        self.start()
        serving = self._serving
        try:
            if serving is not None:
                serving.join()
        finally:
            if not self._closed:
                self.stop(stop_timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting; let handlers finish for ``timeout`` s (default 1), then kill them."""
        if self._closed:
            return
        self._closed = True
        serving = self._serving
        if serving is not None and not serving.dead:
            serving.kill(block=True)
        self._close_listener()
        self._stop_handlers(DEFAULT_STOP_TIMEOUT if timeout is None else timeout)

    def close(self) -> None:
        """Stop at once: kill running handlers without waiting."""
        self.stop(0)

    def _close_listener(self) -> None:
        sock = self.socket
        if sock is not None and sock.fileno() >= 0:
            # Wake anyone still waiting on the descriptor before its number is reused.
            cancel_fd_waits(sock.fileno())
            sock.close()

    def _stop_handlers(self, timeout: float) -> None:
        """Wait for running handlers, then kill what is left."""
        if timeout > 0 and len(self.pool):
            self._begin_graceful_stop()
            self.pool.join(timeout=timeout)
        if len(self.pool):
            self.pool.kill(block=True, timeout=max(timeout, 1.0))

    def _begin_graceful_stop(self) -> None:
        """Hook: ask handlers to wind down (WSGIServer closes idle keep-alive connections)."""

    # -- handlers ------------------------------------------------------------------
    def _serve(self) -> None:
        raise NotImplementedError

    def _report_handler_error(self, where: str, address: Any) -> None:
        log.exception("%s: error in %s for %s", type(self).__name__, where, address)

    def _run_handler(self, handle: Any, subject: Any, address: Any) -> None:
        """``handle(subject, address)`` (a connection or a datagram), errors logged."""
        try:
            # Two named arguments, not ``handle(*args)``: CPython 3.11 runs a
            # Python handler in this C frame of the interpreter, where a call
            # with a star nests a new one (~400 bytes of C stack that greenlet
            # copies out and back in at every switch of the handler).
            handle(subject, address)
        except GreenletExit:
            raise
        except Exception:
            self._report_handler_error(getattr(handle, "__qualname__", repr(handle)), address)

    def __enter__(self) -> BaseServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("started" if self.started else "new")
        return f"<{type(self).__name__} {self.address} {state}>"
