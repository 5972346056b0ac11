"""``StreamServer``: accept TCP connections and run ``handle(socket, address)`` for each.

    def echo(sock, address):
        while data := sock.recv(65536):
            sock.sendall(data)

    StreamServer(("127.0.0.1", 0), echo).serve_forever()

The accept loop
---------------
One serving greenlet accepts in a loop until the kernel says "would block",
then waits in the listener's wait queue (see ``greenpatch.hub.io``).  Accepting a burst before
going back to the loop keeps the cost per connection to the system calls and a
task start.  When a bounded pool is full it waits for room *before* accepting.

Accept errors that say "the process is out of something" (EMFILE, ENFILE,
ENOBUFS, ENOMEM) are logged and followed by a short pause, instead of a busy
loop on a listener that stays readable; errors of one aborted connection
(ECONNABORTED, EPROTO...) are skipped.

TLS: with ``ssl_context=`` the accepted socket is wrapped in the handler's
greenlet and the handshake runs there, cooperatively, bounded by
``handshake_timeout``; a failed handshake is logged at debug level (scanners and
plain-HTTP clients do this all day) and the connection closed.
"""

from __future__ import annotations

import errno
import ssl
from typing import Any, Callable

from greenpatch.hub import Greenlet, get_hub
from greenpatch.hub.io import READ, IoWaitQueue
from greenpatch.hub.pool import Group
from greenpatch.server._io import CooperativeSocket, RawSocket
from greenpatch.server.base import BaseServer, log, pool_from_spawn

__all__ = ["StreamServer"]

Handler = Callable[[CooperativeSocket, Any], Any]

_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
#: Seconds to pause accepting after the process ran out of descriptors or memory.
ACCEPT_PAUSE = 0.05
#: Connections accepted in one go before the serving greenlet lets others run.
ACCEPT_BURST = 64

#: gevent's ``**ssl_args`` that greenpatch turns into an ``ssl.SSLContext``.
SSL_ARGS = frozenset({"keyfile", "certfile", "ca_certs", "cert_reqs", "ciphers", "server_side"})


def context_from_ssl_args(ssl_args: dict[str, Any]) -> ssl.SSLContext:
    """An ``SSLContext`` from gevent-style ``keyfile=``/``certfile=``/... arguments."""
    unknown = set(ssl_args) - SSL_ARGS
    if unknown:
        raise TypeError(
            f"unexpected arguments {sorted(unknown)}; TLS options other than "
            f"{sorted(SSL_ARGS)} go through ssl_context=ssl.SSLContext(...)"
        )
    if "certfile" not in ssl_args:
        raise TypeError("TLS needs certfile= (or pass ssl_context=)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(ssl_args["certfile"], ssl_args.get("keyfile"))
    if ssl_args.get("ca_certs"):
        context.load_verify_locations(ssl_args["ca_certs"])
    if ssl_args.get("cert_reqs") is not None:
        context.verify_mode = ssl_args["cert_reqs"]
    if ssl_args.get("ciphers"):
        context.set_ciphers(ssl_args["ciphers"])
    return context


_raw_accept = RawSocket._accept  # type: ignore[attr-defined]  # the C accept: (fd, address)


class StreamServer(BaseServer):
    """A TCP (or TLS) server running ``handle(socket, address)`` per connection.

    ``listener`` is a listening socket or an address ``(host, port)`` (port 0
    picks a free one: read ``server.address`` after ``start()``).  The positional
    parameters are gevent's: ``backlog`` then ``spawn`` (``"default"``, an int
    or a ``Pool``).  ``pool=`` (keyword) is the greenpatch name for ``spawn``: it
    bounds the concurrent connections.  The handler's socket is closed when the
    handler returns.
    """

    def __init__(
        self,
        listener: Any,
        handle: Handler | None = None,
        backlog: int | None = None,
        spawn: Any = "default",
        *,
        pool: Group | int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout: float | None = 10.0,
        **ssl_args: Any,
    ) -> None:
        # The positional order is gevent's (listener, handle, backlog, spawn), so
        # that StreamServer(addr, handle, 50) means a backlog of 50 in both;
        # greenpatch's own options are keyword-only.
        super().__init__(listener, pool_from_spawn(spawn, pool), backlog)
        if handle is not None:
            self.handle = handle  # type: ignore[method-assign,assignment]
        if ssl_args:
            if ssl_context is not None:
                raise TypeError("pass either ssl_context= or keyfile=/certfile=..., not both")
            ssl_context = context_from_ssl_args(ssl_args)
        self.ssl_context = ssl_context
        self.handshake_timeout = handshake_timeout

    def handle(self, sock: CooperativeSocket, address: Any) -> None:
        """Override in a subclass, or pass ``handle=`` to the constructor."""
        raise NotImplementedError(f"{type(self).__name__} needs a handle(socket, address)")

    # -- accepting -------------------------------------------------------------
    def _serve(self) -> None:
        listener = self.socket
        assert listener is not None
        hub = get_hub()
        family, type_, proto = listener.family, listener.type, listener.proto
        pool = self.pool
        start_connection = self._start_connection
        # The listener's wait queue, for the server's life: closing the server
        # ends the wait through cancel_fd_waits, and the queue goes with it.
        readable = IoWaitQueue(listener.fileno(), READ, hub)
        try:
            while True:
                if pool.full():
                    pool.wait_available()
                for _ in range(ACCEPT_BURST):
                    try:
                        fd, address = _raw_accept(listener)
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        self._accept_failed(exc)
                        break
                    start_connection(RawSocket(family, type_, proto, fd), address)
                    if pool.full():
                        break
                else:
                    hub.sleep(0)  # a flood: let the accepted ones run before more
                    continue
                readable.wait()
        finally:
            readable.close()

    def _accept_failed(self, exc: OSError) -> None:
        if exc.errno in _OUT_OF_RESOURCES:
            log.error("%s: accept failed (%s); pausing %.2fs", self, exc, ACCEPT_PAUSE)
            get_hub().sleep(ACCEPT_PAUSE)
        elif exc.errno == errno.EBADF or self.closed:
            raise exc  # the listener is gone
        else:
            log.debug("%s: accept failed: %s", self, exc)

    def _start_connection(self, raw: Any, address: Any) -> None:
        glet = Greenlet(self._handle_connection, raw, address)
        self.pool.start(glet)

    def _handle_connection(self, raw: Any, address: Any) -> None:
        context = self.ssl_context
        if context is not None:
            try:
                raw = context.wrap_socket(
                    raw,
                    server_side=True,
                    do_handshake_on_connect=False,
                )
            except BaseException:
                raw.close()
                raise
        sock = CooperativeSocket(raw)
        try:
            if context is not None:
                try:
                    sock.do_handshake(self.handshake_timeout)
                except (OSError, ssl.SSLError) as exc:
                    log.debug("%s: TLS handshake with %s failed: %s", self, address, exc)
                    return
            self._run_handler(self.handle, sock, address)
        finally:
            sock.close()
