"""pg8000: the cooperation probe.

pg8000 is pure Python: it speaks PostgreSQL's protocol over a ``socket`` it
opens itself (``socket.create_connection`` and a buffered ``makefile``), so
under the patch every read waits on the hub.  The probe makes one ``SELECT
pg_sleep(delay)`` on a connection of its own (a connection runs one query at a
time, so each greenlet needs its own): the server holds the answer for
``delay``, and N calls at once take about ``delay`` when the reads yield, and
``N * delay`` when they block.  Connecting and closing are part of the call;
on loopback with trust authentication they cost milliseconds.

Like ``probes.py``, this module is imported after ``patch_all()`` in the probe
subprocess; it imports pg8000 inside the function.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import unquote, urlsplit

from greenpatch.compat_tests.probes import ProbeContext, ProbeSetupError

__all__ = ["connection_arguments", "probe"]


def connection_arguments(url: str) -> dict[str, Any]:
    """pg8000's keyword arguments from ``postgresql://user[:password]@host:port/database``."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ProbeSetupError(f"expected a postgresql://user@host:port/database URL, got {url!r}")
    arguments: dict[str, Any] = {
        "user": unquote(parts.username or "postgres"),
        "host": parts.hostname,
        "port": parts.port or 5432,
    }
    # Left out when absent: pg8000 then sends none (trust) and uses the user's database.
    if parts.password:
        arguments["password"] = unquote(parts.password)
    database = unquote(parts.path.lstrip("/"))
    if database:
        arguments["database"] = database
    return arguments


def probe(context: ProbeContext) -> None:
    """One ``SELECT pg_sleep(delay)`` on a fresh connection (one per greenlet)."""
    url = context.service_urls.get("postgresql")
    if not url:
        raise ProbeSetupError(
            "the pg8000 probe needs a PostgreSQL URL: run it with --service postgresql=URL"
        )
    native: Any = importlib.import_module("pg8000.native")
    connection = native.Connection(timeout=context.delay + 30, **connection_arguments(url))
    try:
        connection.run("SELECT pg_sleep(:delay)", delay=context.delay)
    finally:
        connection.close()
