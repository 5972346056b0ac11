"""psycopg2: the cooperation probe.

psycopg2 is a C extension over libpq, and libpq does its own network I/O in C,
on a socket Python never sees: patching Python's ``socket`` and ``select`` does
not reach it.  What makes it cooperative is the ``psycopg2`` plugin
(``greenpatch.plugins.psycopg2``), which ``patch_all()`` arms and which installs
a libpq wait callback on the hub the moment psycopg2 is imported.  The probe
makes one ``SELECT pg_sleep(delay)`` on a connection of its own (one per
greenlet: a psycopg2 connection runs one query at a time); connecting and
closing are part of the call.  N calls take about ``delay`` together when the
waits go through the hub, ``N * delay`` when libpq blocks (``compat run
psycopg2 --without psycopg2`` shows that).  The probe installs nothing itself:
it measures psycopg2 as a program gets it after ``patch_all()``.

Like ``probes.py``, this module is imported after ``patch_all()`` in the probe
subprocess; it imports psycopg2 inside the function.
"""

from __future__ import annotations

import importlib
from typing import Any

from greenpatch.compat_tests.probes import ProbeContext, ProbeSetupError

__all__ = ["probe"]


def probe(context: ProbeContext) -> None:
    """One ``SELECT pg_sleep(delay)`` on a fresh connection (one per greenlet)."""
    url = context.service_urls.get("postgresql")
    if not url:
        raise ProbeSetupError(
            "the psycopg2 probe needs a PostgreSQL URL: run it with --service postgresql=URL"
        )
    if not url.startswith(("postgresql://", "postgres://")):
        raise ProbeSetupError(f"expected a postgresql://user@host:port/database URL, got {url!r}")
    psycopg2: Any = importlib.import_module("psycopg2")
    # libpq takes the URL as it is; a server that never answers is given up on.
    connection = psycopg2.connect(url, connect_timeout=30)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", (context.delay,))
            cursor.fetchall()
    finally:
        connection.close()
