"""psycopg2: the cooperation probe.

psycopg2 is a C extension over libpq, and libpq does its own network I/O in C:
``connect()`` and ``execute()`` wait in libpq's own ``poll()`` on a socket
Python never sees, so patching Python's ``socket`` and ``select`` does not
reach them.  The probe makes one ``SELECT pg_sleep(delay)`` on a connection of
its own (one per greenlet: a psycopg2 connection runs one query at a time).
It is EXPECTED to block the hub: N calls take about ``N * delay``, one after
the other, and the manifest's ``[probe] blocks`` says why.  The probe does not
install psycopg2's wait callback (``psycopg2.extensions.set_wait_callback``),
which would make the calls cooperative: it measures the library as a user
gets it after ``patch_all()``, so the day greenpatch installs that callback
itself, this probe shows it.

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
