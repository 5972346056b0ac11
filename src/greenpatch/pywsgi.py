"""``greenpatch.pywsgi``: ``WSGIServer`` with gevent's constructor, as ``gevent.pywsgi``.

    from greenpatch.pywsgi import WSGIServer
    WSGIServer(("127.0.0.1", 8000), app).serve_forever()

A thin subclass of ``greenpatch.server.WSGIServer`` whose positional parameters
are gevent's (``listener, application, backlog, spawn, log, error_log,
handler_class, environ``) and which takes gevent's ``**ssl_args``
(``keyfile=``, ``certfile=``).  greenpatch's own options (``max_body_size=``,
timeouts...) are accepted as keywords.

There is no handler class to swap: requests are parsed by the server itself.
``handler_class`` is accepted when it is ``WSGIHandler`` (gevent's default)
and refused otherwise, with the greenpatch way named in the message.
"""

from __future__ import annotations

import logging
from typing import IO, Any

from greenpatch.server import base as _base
from greenpatch.server import stream as _stream
from greenpatch.server import wsgi as _wsgi

__all__ = ["WSGIHandler", "WSGIServer"]


class WSGIHandler:
    """Stands for gevent's per-connection handler class, for ``handler_class=``.

    greenpatch parses HTTP inside the server; there is nothing here to
    subclass.  Passing this class (gevent's default) is the same as passing none.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            "greenpatch.pywsgi.WSGIHandler is a placeholder for handler_class=; "
            "greenpatch has no per-connection handler objects (see docs/server.md)"
        )


class WSGIServer(_wsgi.WSGIServer):
    """``greenpatch.server.WSGIServer`` taking gevent's ``pywsgi.WSGIServer`` arguments."""

    def __init__(
        self,
        listener: Any,
        application: Any = None,
        backlog: int | None = None,
        spawn: Any = "default",
        log: logging.Logger | IO[str] | str | None = "default",
        error_log: Any = "default",
        handler_class: Any = None,
        environ: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if application is None:
            application = getattr(self, "application", None)
            if application is None:
                raise TypeError("WSGIServer needs an application (a WSGI callable)")
        if handler_class is not None and handler_class is not WSGIHandler:
            raise TypeError(
                f"handler_class={handler_class!r} is not supported: greenpatch has no "
                "handler classes. For WebSockets wrap the application in "
                "greenpatch.server.WebSocketApp(handler); for other per-request "
                "behaviour use WSGI middleware."
            )
        if not (isinstance(error_log, str) and error_log == "default"):
            raise TypeError(
                "error_log= is not supported: application errors go to the "
                "'greenpatch.server' logger; configure it with the logging module"
            )
        ssl_args = {name: options.pop(name) for name in list(options) if name in _stream.SSL_ARGS}
        if ssl_args:
            if options.get("ssl_context") is not None:
                raise TypeError("pass either ssl_context= or keyfile=/certfile=..., not both")
            options["ssl_context"] = _stream.context_from_ssl_args(ssl_args)
        if not (isinstance(log, str) and log == "default"):
            options["log"] = log
        super().__init__(
            listener,
            application,
            pool=_base.pool_from_spawn(spawn, options.pop("pool", None)),
            backlog=backlog,
            environ=environ,
            **options,
        )
