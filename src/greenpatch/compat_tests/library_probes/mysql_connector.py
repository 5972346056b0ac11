"""mysql-connector-python: the cooperation probe, and the pytest plugin its suite needs.

The probe (``probe``) makes one ``SELECT SLEEP(delay)`` on a connection of its
own (opened and closed in the call: one per greenlet) through the pure-Python
implementation (``use_pure=True``): the server holds the answer for ``delay``,
so N calls at once take about ``delay`` when the library's socket I/O yields to
the hub, and ``N * delay`` when it blocks.

The plugin (``-p greenpatch.compat_tests.library_probes.mysql_connector`` in the
manifest's pytest args) exists because the sdist's tests do not configure
themselves: their own runner, ``unittests.py``, bootstraps (or, with
``--use-external-server``, connects to) a server and fills module globals of the
``tests`` package (``MYSQL_SERVERS``, ``MYSQL_VERSION``, ...) before it loads the
test modules.  Under pytest nothing fills them, and every test meets
``get_mysql_config() -> None``.  ``pytest_configure`` does what the runner's
external-server branch does, before collection (test modules read
``tests.MYSQL_VERSION`` in their skip decorators at import), from the variables
the runner itself reads for its defaults: ``MYSQL_HOST``, ``MYSQL_PORT``,
``MYSQL_USER``, ``MYSQL_PASSWORD``.  It also hides the C extension
(``_mysql_connector``), so that the tests exercise the pure-Python
implementation only, whatever the installed wheel carries.

Like ``probes.py``, this module is imported after ``patch_all()`` in the patched
run and the probe subprocess; it imports the library inside its functions.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from typing import Any

from greenpatch.compat_tests.probes import ProbeContext, ProbeSetupError

__all__ = ["configure_tests", "probe", "pytest_configure", "server_config"]

#: The database the runner creates for the tests (``unittests.py``: "myconnpy").
TEST_DATABASE = "myconnpy"
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)", re.ASCII)


def server_config(url: str) -> dict[str, Any]:
    """Connection arguments from a ``mysql://user:password@host:port/database`` URL."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb") or not parts.hostname:
        raise ProbeSetupError(f"expected a mysql://user@host:port/database URL, got {url!r}")
    return {
        "host": parts.hostname,
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/") or None,
    }


def probe(context: ProbeContext) -> None:
    """One ``SELECT SLEEP(delay)`` on a fresh pure-Python connection (one per greenlet)."""
    url = context.service_urls.get("mariadb")
    if not url:
        raise ProbeSetupError(
            "the mysql-connector probe needs a server: run it with --service mariadb=URL"
        )
    connector: Any = importlib.import_module("mysql.connector")
    # No TLS: its handshake costs ~70 ms of CPU per connection (the ssl
    # context loads the system's CA store), which 20 greenlets would spend one
    # after the other -- that measures the handshake, not whether waiting yields.
    connection = connector.connect(use_pure=True, ssl_disabled=True, **server_config(url))
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT SLEEP(%s)", (context.delay,))
        (slept,) = cursor.fetchone()
        cursor.close()
        if slept != 0:  # 1 means the sleep was interrupted
            raise RuntimeError(f"SELECT SLEEP({context.delay}) answered {slept!r}")
    finally:
        connection.close()


# -- the pytest plugin ----------------------------------------------------------------
def configure_tests(environ: dict[str, str] | os._Environ[str]) -> None:
    """Point the sdist's ``tests`` package at the server the variables name.

    What ``unittests.py --use-external-server`` does between parsing its options
    and loading the tests; raises when the server cannot be reached, so that the
    run stops at once instead of failing every test.
    """
    # Hidden before mysql.connector is imported: its ``HAVE_CEXT`` and the tests'
    # ``all_cnx_classes`` then hold the pure-Python connection only.
    sys.modules["_mysql_connector"] = None  # type: ignore[assignment]
    tests: Any = importlib.import_module("tests")
    mysqld: Any = importlib.import_module("tests.mysqld")
    connector: Any = importlib.import_module("mysql.connector")
    if connector.HAVE_CEXT:
        raise RuntimeError("the C extension of mysql-connector-python is still importable")

    host = environ.get("MYSQL_HOST", "127.0.0.1")
    port = int(environ.get("MYSQL_PORT", "3306"))
    user = environ.get("MYSQL_USER", "root")
    password = environ.get("MYSQL_PASSWORD", "")
    server = mysqld.MySQLExternalServer("", "server1")
    # The runner's own values (connection_timeout, no socket folder by default).
    server.client_config = {
        "host": host,
        "port": port,
        "user": user,
        "password": password,
        "database": TEST_DATABASE,
        "connection_timeout": 60,
        "unix_socket": None,
    }
    server.xplugin_config = {
        "host": host,
        "port": int(environ.get("MYSQLX_PORT", "33060")),
        "user": user,
        "password": password,
        "schema": TEST_DATABASE,
        "socket": None,
    }
    with connector.connect(
        host=host, port=port, user=user, password=password, use_pure=True
    ) as connection:
        cursor = connection.cursor()
        # A fresh database for each pytest process, as the runner makes one per
        # run: the plain and the patched runs start from the same state.
        cursor.execute(f"DROP DATABASE IF EXISTS {TEST_DATABASE}")
        cursor.execute(f"CREATE DATABASE {TEST_DATABASE} CHARACTER SET utf8mb4")
        cursor.execute("SELECT VERSION()")
        text = cursor.fetchone()[0]
        match = _VERSION.match(text)
        if match is None:
            raise RuntimeError(f"the server answered an unknown version: {text!r}")
        server.version = tuple(int(part) for part in match.groups())
        server.license = _variable(cursor, "license")
        server.unix_socket = _variable(cursor, "socket")
        server.mysqlx_unix_socket = _variable(cursor, "mysqlx_socket")
        cursor.execute(
            "SELECT 1 FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s"
            " AND ROUTINE_NAME = %s AND ROUTINE_TYPE = 'PROCEDURE' LIMIT 1",
            ("sys", "ML_TRAIN"),
        )
        ml_enabled = cursor.fetchone() is not None
        cursor.close()

    tests.MYSQL_SERVERS.append(server)
    tests.MYSQL_EXTERNAL_SERVER = True
    tests.MYSQL_ML_ENABLED = ml_enabled
    tests.MYSQL_VERSION = server.version
    tests.MYSQL_LICENSE = server.license
    tests.MYSQL_VERSION_TXT = ".".join(map(str, server.version))
    # The runner's default (no --ipv6): the server listens on IPv4 loopback only.
    tests.IPV6_AVAILABLE = False


def _variable(cursor: Any, name: str) -> str | None:
    cursor.execute("SHOW VARIABLES LIKE %s", (name,))
    row = cursor.fetchone()
    return None if row is None else str(row[1])


def pytest_configure(config: Any) -> None:
    """pytest's hook: configure the tests before any test module is imported.

    A missing or unreachable server stops pytest at once (a usage error), rather
    than failing each of a thousand tests for the same reason.
    """
    import pytest

    # MYSQL_PORT is required (the runner defaults to 3306): a forgotten variable
    # must not point the suite at whatever server the machine happens to run.
    if "MYSQL_PORT" not in os.environ:
        raise pytest.UsageError(
            "the mysql-connector plugin needs MYSQL_PORT (and MYSQL_HOST, MYSQL_USER, "
            "MYSQL_PASSWORD): the harness sets them from its mariadb service"
        )
    try:
        configure_tests(os.environ)
    except Exception as exc:
        raise pytest.UsageError(
            f"the mysql-connector plugin could not prepare the tests: {type(exc).__name__}: {exc}"
        ) from exc
