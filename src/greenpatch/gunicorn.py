"""A gunicorn worker on greenpatch's hub: ``gunicorn -k greenpatch.gunicorn.Worker app:app``.

Each worker process patches the standard library (``greenpatch.patch_all()``)
before it imports the application, then serves every connection in a greenlet
of its own, at most ``--worker-connections`` at once.  See docs/gunicorn.md.

What serves the requests: gunicorn's own HTTP handling
-------------------------------------------------------
The worker is an ``AsyncWorker`` (the base of gunicorn's gevent worker): its
``handle`` reads requests with gunicorn's parser and ``handle_request`` runs
the application through gunicorn's ``wsgi.create`` / ``Response``.  Because the
standard library is patched, gunicorn's blocking socket calls (``recv``,
``sendall``, ``sendfile``, the TLS handshake) wait on the hub instead of
blocking the process.  What greenpatch adds is the part gunicorn leaves to its
async workers: the accept loop, the pool, the keep-alive timeout, the
heartbeat, and the stop.

Rejected: serving through ``greenpatch.server``'s ``WSGIServer``.  It is a
complete HTTP server, but a gunicorn user configures gunicorn: the access log
(``--access-logformat``, ``--access-logfile``, statsd), ``--limit-request-line``
/ ``-fields`` / ``-field_size``, ``--keep-alive`` seconds,
``--forwarded-allow-ips`` and ``--proxy-protocol``, the ``pre_request`` /
``post_request`` hooks, ``--max-requests``, HTTP/2 and the TLS options
(``--certfile``, ``--ciphers``, ``--ssl-version``, ALPN) all live in gunicorn's
handling.  Mapping each onto ``WSGIServer`` options would be a second,
always-incomplete copy of gunicorn, and the two parsers would answer edge
cases differently depending on the worker class.  gunicorn's gevent worker
also offers a ``pywsgi`` flavour (``GeventPyWSGIWorker``); its users get
gevent's HTTP handling instead of gunicorn's and lose most of the above.

Rejected: ``greenpatch.server.StreamServer`` for accepting.  Its handlers get a
``CooperativeSocket``, not a ``socket.socket``: gunicorn checks
``isinstance(client, ssl.SSLSocket)`` for ALPN/HTTP/2, puts the socket in the
environ (``gunicorn.sock``), and calls ``sendfile``/``setsockopt`` on it.  The
accept loop here is a few lines on the patched socket module instead.

The accept loop never changes the listener's blocking mode
----------------------------------------------------------
gunicorn's listeners are shared by every worker process (one open file
description), and the arbiter made them non-blocking.  A green socket whose
timeout is None switches the descriptor to non-blocking around each
``accept``; with several workers on one listener those switches interleave and
one worker's ``accept`` could block in the kernel.  So the listeners keep
timeout 0 (non-blocking for good, as the arbiter left them): ``accept`` either
returns a connection or ``BlockingIOError``, and the loop then waits for the
listener to be readable on the hub.  All the workers wake for a connection;
one gets it, the others wait again.

``--worker-connections`` is the pool size: when the pool is full the loop
stops accepting, so more clients wait in the kernel's backlog (``--backlog``),
never refused by this worker.

The heartbeat
-------------
gunicorn's arbiter kills a worker whose temporary file was not touched for
``--timeout`` seconds.  A greenlet of its own touches it (``notify()``) every
``min(1, timeout / 2)`` seconds, whatever the requests do: a request waiting on
I/O for longer than ``--timeout`` lets the hub run, so the heartbeat goes on;
a request that computes without yielding (or calls something that blocks the
process) stops the heartbeat too, and the arbiter then kills the worker, which
is what ``--timeout`` is for.  The heartbeat also stops the worker when its
parent changed (the arbiter died).

Stopping
--------
Setting ``alive`` to False from anywhere (SIGTERM, ``--max-requests``, the
reloader, the heartbeat) wakes the main greenlet, which stops accepting,
closes the keep-alive connections that wait for their next request, and lets
the requests in progress finish (their responses carry ``Connection: close``)
for up to ``--graceful-timeout`` seconds before killing them.  SIGQUIT and
SIGINT are gunicorn's quick stop: the worker stops accepting, runs the
``worker_int`` hook, kills what is in progress and exits.  Signal handlers run
in a greenlet of their own (greenpatch's patched ``signal``), so they never
interrupt a request.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
import warnings
from typing import Any, ClassVar

import gunicorn  # type: ignore[import-untyped]
from gunicorn.sock import ssl_context  # type: ignore[import-untyped]
from gunicorn.workers.base_async import AsyncWorker  # type: ignore[import-untyped]

import greenpatch
from greenpatch.hub import Event, GreenletExit, Pool, Timeout, getcurrent_task, sleep, wait_read
from greenpatch.hub.greenlet import Greenlet

__all__ = ["GreenpatchWorker", "Worker"]

VERSION = f"greenpatch/{greenpatch.__version__} gunicorn/{gunicorn.__version__}"

#: accept() errors that say "the process is out of something": pause, do not spin.
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Seconds to pause accepting after running out of descriptors or memory.
ACCEPT_PAUSE = 0.05


class Worker(AsyncWorker):  # type: ignore[misc]  # gunicorn ships no type information
    """gunicorn worker class serving each connection in a greenlet on greenpatch's hub."""

    #: Keyword arguments for ``greenpatch.patch_all()`` (subclass to change them).
    patch_flags: ClassVar[dict[str, Any]] = {}
    #: Seconds a TLS client has to finish its handshake.
    handshake_timeout: ClassVar[float] = 10.0

    # Set by gunicorn's base class: the application and the listeners.
    wsgi: Any
    sockets: list[Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Runs in the arbiter, before the fork: nothing here touches the process.
        self._alive = True
        self._wakeup: Event | None = None
        self._quick = False
        self._pool: Pool | None = None
        # Connections that served a request and wait for the next one.
        self._served: set[Greenlet] = set()
        self._idle: set[Greenlet] = set()
        # The gunicorn ``Response`` of each request in progress.
        self._responses: dict[Greenlet, Any] = {}
        self._ssl_context: ssl.SSLContext | None = None
        super().__init__(*args, **kwargs)

    # -- alive wakes the main greenlet -------------------------------------------
    @property
    def alive(self) -> bool:
        return self._alive

    @alive.setter
    def alive(self, value: bool) -> None:
        # gunicorn sets ``alive = False`` from many places (signals, max_requests,
        # the reloader): each of them starts the stop.
        self._alive = bool(value)
        if not value:
            # Responses whose head has not gone out yet say Connection: close.
            for response in self._responses.values():
                response.force_close()
            if self._wakeup is not None:
                self._wakeup.set()

    # -- process set-up ------------------------------------------------------------
    def init_process(self) -> None:
        self.patch()
        super().init_process()  # loads the application, then calls run()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        application = self.wsgi
        responses = self._responses

        def tracked(environ: dict[str, Any], start_response: Any) -> Any:
            # gunicorn passes its Response's bound start_response.
            response = getattr(start_response, "__self__", None)
            if response is not None:
                responses[getcurrent_task()] = response
                if not self.alive:
                    response.force_close()
            return application(environ, start_response)

        self.wsgi = tracked

    def patch(self) -> None:
        """Patch the standard library and make the listeners green sockets.

        Runs in the worker process right after the fork, before the application
        is imported; the arbiter is never patched.
        """
        with warnings.catch_warnings():
            # gunicorn itself imported ssl (and socket) in the arbiter: the
            # warning is about SSL objects made before patching, and the
            # worker makes its TLS context after it.
            warnings.filterwarnings("ignore", "ssl was imported before patch_all")
            greenpatch.patch_all(**self.patch_flags)
        green = []
        for listener in self.sockets:
            raw = listener.sock
            sock = socket.socket(raw.family, raw.type, raw.proto, fileno=raw.detach())
            sock.setblocking(False)  # as the arbiter made it; see the module docstring
            green.append(sock)
        self.sockets = green

    # -- the heartbeat ---------------------------------------------------------------
    def notify(self) -> None:
        super().notify()
        if self.ppid != os.getppid():
            self.log.info("Parent changed, shutting down: %s", self)
            self.alive = False

    def _heartbeat(self) -> None:
        interval = min(1.0, self.timeout / 2) if self.timeout else 1.0
        while True:
            self.notify()
            sleep(interval)

    # -- serving -----------------------------------------------------------------------
    def run(self) -> None:
        self._wakeup = Event()
        self._pool = Pool(self.worker_connections)
        if self.cfg.is_ssl:
            self._ssl_context = ssl_context(self.cfg)
        heartbeat = Greenlet.spawn(self._heartbeat)
        heartbeat.name = "gunicorn-heartbeat"
        acceptors = []
        for listener in self.sockets:
            acceptor = Greenlet.spawn(self._accept_loop, listener)
            acceptor.name = f"gunicorn-accept-{listener.getsockname()}"
            acceptors.append(acceptor)
        try:
            while self.alive:
                self._wakeup.wait()
            for acceptor in acceptors:
                acceptor.kill(block=True)
            for listener in self.sockets:
                listener.close()
            if self._quick:
                self._pool.kill(block=True, timeout=1.0)
            else:
                self._graceful_stop()
        finally:
            heartbeat.kill(block=True)

    def _graceful_stop(self) -> None:
        pool = self._pool
        assert pool is not None
        # Keep-alive connections waiting for a next request will get none.
        for glet in list(self._idle):
            glet.kill(block=False)
        pool.join(timeout=self.cfg.graceful_timeout)
        if len(pool):
            self.log.warning("Worker graceful timeout (pid:%s)", self.pid)
            pool.kill(block=True, timeout=1.0)

    def _accept_loop(self, listener: socket.socket) -> None:
        pool = self._pool
        assert pool is not None
        fd = listener.fileno()
        while True:
            if pool.full():
                pool.wait_available()  # extra clients wait in the backlog
            try:
                client, address = listener.accept()
            except BlockingIOError:
                wait_read(fd)
                continue
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self.log.error("accept() failed: %s; pausing %.2fs", exc, ACCEPT_PAUSE)
                    sleep(ACCEPT_PAUSE)
                elif exc.errno == errno.EBADF:
                    return  # the listener is closed
                else:
                    self.log.debug("accept() failed: %s", exc)
                continue
            client.setblocking(True)
            pool.spawn(self.handle, listener, client, address)

    def handle(self, listener: socket.socket, client: Any, addr: Any) -> None:
        glet = getcurrent_task()
        try:
            if self._ssl_context is not None:
                client = self._handshake(client, addr)
                if client is None:
                    return
            super().handle(listener, client, addr)
        finally:
            self._served.discard(glet)
            self._idle.discard(glet)

    def _handshake(self, client: socket.socket, addr: Any) -> ssl.SSLSocket | None:
        assert self._ssl_context is not None
        try:
            tls = self._ssl_context.wrap_socket(
                client,
                server_side=True,
                do_handshake_on_connect=False,
                suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
            )
        except BaseException:
            client.close()
            raise
        try:
            with Timeout(self.handshake_timeout):
                tls.do_handshake()
        except (OSError, Timeout) as exc:
            # Scanners and plain-HTTP clients do this all day.
            self.log.debug("TLS handshake with %s failed: %s", addr, exc or "timed out")
            tls.close()
            return None
        return tls

    def timeout_ctx(self) -> _WaitForRequest:
        """What gunicorn's keep-alive loop enters around reading each request."""
        return _WaitForRequest(self)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        glet = getcurrent_task()
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            self._responses.pop(glet, None)
            self._served.add(glet)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, GreenletExit):
            # Killed by the stop: an idle keep-alive connection, or a request
            # past --graceful-timeout.  Nothing to answer; the socket is closed.
            self.log.debug("Closing connection from %s: the worker is stopping", addr)
            return
        super().handle_error(req, client, addr, exc)

    # -- signals ---------------------------------------------------------------------
    # The patched signal module runs these in a greenlet of their own, so they
    # may block cooperatively; none of them interrupts a request.
    def handle_exit(self, sig: int, frame: Any) -> None:
        self.alive = False  # graceful

    def handle_quit(self, sig: int, frame: Any) -> None:
        # gunicorn's quick stop (SIGQUIT, SIGINT): no waiting for requests.
        self._quick = True
        self.alive = False
        self.cfg.worker_int(self)


class _WaitForRequest:
    """``--keep-alive`` seconds to read a request head; records keep-alive idleness.

    A connection that has served a request and waits here is idle: a graceful
    stop closes it at once instead of waiting for the keep-alive timeout.
    """

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._glet = getcurrent_task()
        self._timeout = Timeout(worker.cfg.keepalive, False)

    def __enter__(self) -> None:
        worker = self._worker
        if self._glet in worker._served:
            if not worker.alive:
                # Stopping: do not wait for another request on this connection.
                raise StopIteration("the worker is stopping")
            worker._idle.add(self._glet)
        self._timeout.start()

    def __exit__(self, exc_type: Any, value: Any, tb: Any) -> bool:
        self._worker._idle.discard(self._glet)
        return bool(self._timeout.__exit__(exc_type, value, tb))


GreenpatchWorker = Worker
