"""``greenpatch serve module:app``: serve a WSGI application on ``WSGIServer``.

Wired into the ``greenpatch`` command by ``greenpatch/cli.py`` through
``add_arguments(parser)`` and ``run(args)``.

The stdlib is patched *before* the application is imported, so that the
clients it creates at import time (a database pool, an HTTP session) are
cooperative.  The patch is reached through ``import greenpatch`` inside
``run``: the server room itself never imports the patcher (layering, see
docs/architecture.md), only this entry point does, at call time.

There is no ``--workers``: one process runs one hub on one core.  Several
processes sharing a listener need a supervisor that forks, restarts and
reloads them; that is gunicorn's job (and gunicorn runs any WSGI app), not a
half-done copy here.  Run one ``greenpatch serve`` per core behind a load
balancer, or use ``SO_REUSEPORT`` listeners from a process manager.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from typing import Any

__all__ = ["add_arguments", "load_app", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app", help="the WSGI application, as module:attribute (e.g. hello:app)")
    parser.add_argument(
        "--bind", "-b", default="127.0.0.1:8000", help="HOST:PORT to listen on (127.0.0.1:8000)"
    )
    parser.add_argument("--backlog", type=int, default=1024, help="listen backlog (1024)")
    parser.add_argument(
        "--max-connections", type=int, default=None, help="bound on concurrent connections"
    )
    parser.add_argument("--certfile", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--keyfile", help="the private key of --certfile (PEM)")
    parser.add_argument(
        "--no-access-log", action="store_true", help="do not log each request to stderr"
    )
    parser.add_argument(
        "--keepalive-timeout", type=float, default=15.0, help="idle keep-alive seconds (15)"
    )
    parser.add_argument(
        "--stop-timeout", type=float, default=10.0, help="seconds to finish requests on SIGTERM"
    )
    parser.add_argument(
        "--no-patch", action="store_true", help="do not patch the standard library first"
    )


def load_app(spec: str) -> Any:
    """Import ``module:attribute`` (the attribute may be dotted) from the current directory."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"expected module:attribute, not {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is not callable (a WSGI application is)")
    return target


def run(args: argparse.Namespace) -> int:
    if not args.no_patch:
        import greenpatch

        greenpatch.patch_all()
    from greenpatch.server.wsgi import WSGIServer

    try:
        app = load_app(args.app)
    except (ImportError, AttributeError, ValueError, TypeError) as exc:
        print(f"greenpatch serve: cannot load {args.app!r}: {exc}", file=sys.stderr)
        return 2
    ssl_context = None
    if args.certfile:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.certfile, args.keyfile)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    server = WSGIServer(
        args.bind,
        app,
        pool=args.max_connections,
        backlog=args.backlog,
        ssl_context=ssl_context,
        log=None if args.no_access_log else logging.getLogger("greenpatch.server.access"),
        keepalive_timeout=args.keepalive_timeout,
    )
    try:
        server.init_socket()
    except OSError as exc:
        print(f"greenpatch serve: cannot listen on {args.bind}: {exc}", file=sys.stderr)
        return 1

    def terminate(signum: int, frame: Any) -> None:
        # Runs in whichever greenlet the interpreter is in; the hub hands
        # SystemExit to the main greenlet, whose serve_forever stops gracefully.
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    scheme = "https" if ssl_context else "http"
    host, port = server.address[:2]
    print(f"greenpatch serve: {args.app} on {scheme}://{host}:{port}/", file=sys.stderr, flush=True)
    try:
        server.serve_forever(stop_timeout=args.stop_timeout)
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m greenpatch.server.cli module:app``: the same, without the main CLI."""
    parser = argparse.ArgumentParser(prog="greenpatch serve", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
