"""psycopg (3): the cooperation probe.

psycopg 3's sync API does its protocol work in generators and waits for the
server through a *wait function*; with its C extension (psycopg-binary or
psycopg-c) that is ``wait_c``, a ``poll()`` in C that patching Python's
``select`` does not reach.  The ``psycopg`` plugin
(``greenpatch.plugins.psycopg``) replaces psycopg's wait functions with waits
on the hub as psycopg is imported.  The probe makes one ``SELECT
pg_sleep(delay)`` on a connection of its own (one per greenlet, as in a
program that takes one from a pool per request): the server holds the answer
for ``delay``, so N calls at once take about ``delay`` when the waits yield and
``N * delay`` when they block.  Connecting and closing are part of the call.

psycopg's sdist ships no test suite, so no suite manifest names this probe;
run it by hand against a server::

    python -m greenpatch.compat_tests.probes \\
        --callable greenpatch.compat_tests.library_probes.psycopg:probe \\
        --service postgresql=postgresql://postgres@127.0.0.1:5432/postgres

Like ``probes.py``, this module is imported after ``patch_all()`` in the probe
subprocess; it imports psycopg inside the function.
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
            "the psycopg probe needs a PostgreSQL URL: run it with --service postgresql=URL"
        )
    if not url.startswith(("postgresql://", "postgres://")):
        raise ProbeSetupError(f"expected a postgresql://user@host:port/database URL, got {url!r}")
    psycopg: Any = importlib.import_module("psycopg")
    # libpq takes the URL as it is; a server that never answers is given up on.
    with psycopg.connect(url, connect_timeout=30, autocommit=True) as connection:
        connection.execute("SELECT pg_sleep(%s)", (context.delay,)).fetchall()
