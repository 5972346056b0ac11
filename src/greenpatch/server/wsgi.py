"""``WSGIServer``: HTTP/1.1 and 1.0 for WSGI applications, on a ``StreamServer``.

    WSGIServer(("127.0.0.1", 8000), app).serve_forever()

One greenlet per connection runs the requests of that connection one after the
other, so pipelined requests are answered in order; a request's body is read
only as far as its framing says (``_body.py``), and what follows stays buffered
for the next request.  The strict parsing rules, and why, are in ``_http.py``;
the response framing in ``_response.py``.

Time limits, so that slow or idle clients cannot hold connections forever:

* ``header_timeout``: the whole request head must arrive within it, counted
  from its first byte (and, for a new connection, the first byte too): 408;
* ``keepalive_timeout``: an idle keep-alive connection is closed after it;
* ``read_timeout``: each wait for more body bytes, and for the client to take
  response bytes, is bounded by it;
* ``body_timeout`` (off by default): the whole request body must arrive within
  it, counted from the end of the head: 408.  Against slow POST, where each
  byte arrives just inside ``read_timeout``.

``stop(timeout)`` closes idle keep-alive connections at once, lets requests in
progress finish (their responses say ``Connection: close``), and kills what is
still running after ``timeout`` seconds.
"""

from __future__ import annotations

import logging
import socket
import ssl
import sys
from time import localtime, monotonic, strftime
from typing import IO, Any, Callable
from urllib.parse import unquote_to_bytes

from greenpatch.hub.pool import Group
from greenpatch.server._body import Body
from greenpatch.server._http import ClientGone, HTTPError, Limits, Reader, Request, parse_head
from greenpatch.server._io import CooperativeSocket
from greenpatch.server._response import (
    ClientWriteError,
    FileWrapper,
    Response,
    error_response,
)
from greenpatch.server.base import log
from greenpatch.server.stream import StreamServer

__all__ = ["WSGIServer"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Any]

#: Unread request body bytes the server reads and drops to keep a connection alive.
MAX_DRAIN = 65536
_DEFAULT_LOG: Any = object()
access_log = logging.getLogger("greenpatch.server.access")


class WSGIServer(StreamServer):
    """Serve a WSGI application over HTTP/1.1 (and TLS with ``ssl_context=``).

    ``log``: where the access log goes, in the common log format — a
    ``logging.Logger`` (default: ``greenpatch.server.access`` at INFO), a
    file-like object with ``write``, or None to disable it.  ``environ``: extra
    keys for every request's environ.  The limits are described in docs/server.md.
    """

    def __init__(
        self,
        listener: Any,
        application: WSGIApp,
        *,
        pool: Group | int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int | None = None,
        log: logging.Logger | IO[str] | None = _DEFAULT_LOG,
        environ: dict[str, Any] | None = None,
        max_request_line: int = 8190,
        max_header_line: int = 8190,
        max_header_size: int = 65536,
        max_headers: int = 100,
        max_body_size: int | None = None,
        header_timeout: float | None = 10.0,
        keepalive_timeout: float | None = 15.0,
        read_timeout: float | None = 60.0,
        body_timeout: float | None = None,
        handshake_timeout: float | None = 10.0,
    ) -> None:
        super().__init__(
            listener,
            pool=pool,
            ssl_context=ssl_context,
            backlog=backlog,
            handshake_timeout=handshake_timeout,
        )
        self.application = application
        self.limits = Limits(
            max_request_line=max_request_line,
            max_header_line=max_header_line,
            max_header_size=max_header_size,
            max_headers=max_headers,
            max_body_size=max_body_size,
            header_timeout=header_timeout,
            keepalive_timeout=keepalive_timeout,
            read_timeout=read_timeout,
            body_timeout=body_timeout,
        )
        self.access_log = access_log if log is _DEFAULT_LOG else log
        self.extra_environ = dict(environ or {})
        self.base_environ: dict[str, Any] = {}
        self._idle: set[CooperativeSocket] = set()
        self._stopping = False

    def init_socket(self) -> None:
        super().init_socket()
        assert self.socket is not None
        if self.socket.family in (socket.AF_INET, socket.AF_INET6):
            # A streamed response goes out in several sends; without NODELAY,
            # Nagle and the client's delayed ACK would add ~40 ms between them.
            # Set on the listener: Linux passes it on to accepted sockets.
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        host, port = self.address[:2]
        self.base_environ = {
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_SOFTWARE": "greenpatch",
            "SERVER_NAME": host,
            "SERVER_PORT": str(port),
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.ssl_context is not None else "http",
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
            **self.extra_environ,
        }

    def _begin_graceful_stop(self) -> None:
        self._stopping = True
        for sock in list(self._idle):
            sock.close()  # its handler wakes with SocketClosedError and returns

    # -- one connection --------------------------------------------------------------
    def handle(self, sock: CooperativeSocket, address: Any) -> None:
        limits = self.limits
        # Reads pass their own deadlines; the socket's timeout bounds the sends,
        # so that a client that stops reading its response cannot hold the
        # connection (and a pool slot) forever.
        sock.settimeout(limits.read_timeout)
        reader = Reader(sock, limits.read_timeout)
        idle = self._idle
        timeout = limits.header_timeout  # for the first request
        while not self._stopping:
            if not reader.buffer:
                idle.add(sock)
                try:
                    if not reader.fill(timeout):
                        return  # the client closed between requests
                except OSError:  # idle timeout, reset, or closed by stop()
                    return
                finally:
                    idle.discard(sock)
            timeout = limits.keepalive_timeout
            try:
                request = parse_head(reader.read_head(limits), limits)
            except HTTPError as exc:
                self._refuse(sock, exc, address)
                return
            except (ClientGone, OSError):
                return  # vanished in the middle of a head
            if not self._handle_request(sock, reader, request, address):
                return

    def _refuse(self, sock: CooperativeSocket, exc: HTTPError, address: Any) -> None:
        """Answer a request the server will not pass to the application, and close."""
        log.debug("%s: refused a request from %s: %s", self, address, exc)
        try:
            sock.sendall(error_response(exc.status, exc.reason, detail=exc.detail))
        except OSError:
            pass
        self._log_access(address, "-", exc.status, None)

    def _environ(self, request: Request, address: Any) -> dict[str, Any]:
        environ = self.base_environ.copy()
        environ.update(request.environ)
        target = request.target
        if target[:1] != b"/" and b"://" in target[:10]:  # absolute-form: keep the path
            target = b"/" + target.split(b"://", 1)[1].partition(b"/")[2]
        path, _, query = target.partition(b"?")
        if b"%" in path:
            path = unquote_to_bytes(path)
        environ["REQUEST_METHOD"] = request.method
        environ["PATH_INFO"] = path.decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["SERVER_PROTOCOL"] = request.version
        environ["REQUEST_URI"] = environ["RAW_URI"] = request.target.decode("latin-1")
        if type(address) is tuple:
            environ["REMOTE_ADDR"] = address[0]
            environ["REMOTE_PORT"] = str(address[1])
        environ["wsgi.errors"] = sys.stderr
        return environ

    def _handle_request(
        self, sock: CooperativeSocket, reader: Reader, request: Request, address: Any
    ) -> bool:
        """Run the application for one request; whether the connection may be reused."""
        limits = self.limits
        if (
            request.content_length is not None
            and limits.max_body_size is not None
            and request.content_length > limits.max_body_size
        ):
            self._refuse(sock, HTTPError(413, "Content Too Large"), address)
            return False
        environ = self._environ(request, address)
        send_continue = None
        if request.expect_continue and (request.content_length or request.chunked):

            def send_continue() -> None:
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

        # The whole body's deadline (slow POST: a byte just inside each read_timeout).
        reader.body_deadline = (
            None if limits.body_timeout is None else monotonic() + limits.body_timeout
        )
        body = Body(
            reader, request.content_length, request.chunked, limits.max_body_size, send_continue
        )
        environ["wsgi.input"] = body
        response = Response(sock, request, self)
        if request.upgrade:
            environ["greenpatch.upgrade"] = lambda headers: response.upgrade(headers, reader)
        try:
            self._run_application(environ, response, body)
        except ClientWriteError as exc:
            log.debug("%s: %s went away: %s", self, address, exc)
            return False
        except Exception as exc:
            self._application_failed(sock, response, body, exc, environ)
            return False
        if response.hijacked:
            return False
        self._log_access(address, environ, response.code, response.sent)
        if not request.keep_alive or response.close or self._stopping:
            return False
        if body.error is not None:
            return False
        return body.finished or body.drain(MAX_DRAIN)

    def _run_application(self, environ: dict[str, Any], response: Response, body: Body) -> None:
        result = self.application(environ, response.start_response)
        try:
            if body.error is not None:
                raise body.error  # the app swallowed a body error: answer it ourselves
            if type(result) is list and len(result) == 1 and not response.headers_sent:
                response.send_whole(result[0])
                return
            if response.hijacked:
                return
            for data in result:
                response.write(data)
                if body.error is not None and not response.headers_sent:
                    raise body.error
            response.finish()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _application_failed(
        self,
        sock: CooperativeSocket,
        response: Response,
        body: Body,
        exc: Exception,
        environ: dict[str, Any],
    ) -> None:
        address = (environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT"))
        error = body.error if body.error is not None else exc
        if isinstance(error, HTTPError):
            status, reason = error.status, error.reason
            log.debug("%s: bad request body from %s: %s", self, address, error)
        else:
            status, reason = 500, "Internal Server Error"
            log.error(
                "%s: the application failed on %s %s",
                self,
                environ.get("REQUEST_METHOD"),
                environ.get("RAW_URI"),
                exc_info=(type(exc), exc, exc.__traceback__),
            )
        if response.headers_sent:
            return  # too late for a status: closing tells the client it is cut short
        try:
            sock.sendall(error_response(status, reason))
        except OSError:
            pass
        self._log_access(address, environ, status, None)

    # -- the access log ----------------------------------------------------------------
    def _log_access(self, address: Any, environ: Any, status: int, size: int | None) -> None:
        target = self.access_log
        if target is None:
            return
        if isinstance(target, logging.Logger):
            if not target.isEnabledFor(logging.INFO):
                return
        if isinstance(environ, dict):
            line = f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"
        else:
            line = str(environ)
        host = address[0] if isinstance(address, tuple) else "-"
        when = strftime("%d/%b/%Y:%H:%M:%S %z", localtime())
        entry = f'{host} - - [{when}] "{line}" {status} {"-" if size is None else size}'
        if isinstance(target, logging.Logger):
            target.info(entry)
        else:
            target.write(entry + "\n")
