"""PostgreSQL for the suites: a private server in a fresh data directory.

``initdb`` makes a cluster (superuser ``postgres``, UTF8, locale C) in a
directory of its own; ``postgres`` serves it on a free loopback port with its
socket in that directory, durability off (a test database is thrown away: no
fsync, no full-page writes, no synchronous commit).  Readiness is a real query
through ``psql``; so are the manifest's setup statements.  The server is stopped
with SIGINT (PostgreSQL's fast shutdown: it rolls back open transactions and
does not wait for clients), then SIGKILL; its directory is removed, its log
stays in the work dir.

Authentication (pg_hba.conf): ``postgres`` is trusted (the URL carries no
password, and a suite may set one in setup -- it is then accepted and not
needed); every other role logs in with its password (md5, which also accepts
SCRAM verifiers), so a suite that tests password authentication creates its
role in setup: ``CREATE ROLE u LOGIN PASSWORD 'pw'``.

PostgreSQL refuses to run as root: as root, initdb and the server run as the
``postgres`` user (or ``nobody``), see ``services.server_account``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from greenpatch.compat_tests._database_client import (
    run_client,
    run_statements,
    select_one_answer,
)
from greenpatch.compat_tests.services import (
    ServiceUnavailable,
    Started,
    describe_exit,
    log_tail,
    private_dir,
    server_account,
    serving,
    url_fields,
)

#: Debian's versioned server directories (searched after PATH, newest first).
_LIB_PATTERN = "/usr/lib/postgresql/*/bin"
_INSTALL = "apt-get install postgresql"
_GIVE_URL = "--service postgresql=postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE"
#: initdb and the first start are slow on a loaded 2-core machine.
_INITDB_TIMEOUT = 180.0
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 15.0
_QUERY_TIMEOUT = 60.0

_HBA = """\
# Written by greenpatch's compat harness (docs/services.md).
# The superuser is trusted; every other role logs in with its password.
local   all          all                      trust
local   replication  all                      trust
host    all          postgres  127.0.0.1/32   trust
host    all          postgres  ::1/128        trust
host    replication  postgres  127.0.0.1/32   trust
host    replication  postgres  ::1/128        trust
host    all          all       127.0.0.1/32   md5
host    all          all       ::1/128        md5
"""

#: Server settings: fast and disposable, and what client test suites expect
#: (two-phase commit needs prepared transactions; the default is 0).
_SETTINGS = (
    "listen_addresses=127.0.0.1",
    "fsync=off",
    "full_page_writes=off",
    "synchronous_commit=off",
    "max_prepared_transactions=10",
    "max_connections=100",
)


def _version_key(directory: str) -> tuple[int, ...]:
    """/usr/lib/postgresql/15/bin -> (15,); 9.6 -> (9, 6)."""
    return tuple(int(part) for part in re.findall(r"\d+", Path(directory).parent.name))


def _bin_dirs() -> list[Path]:
    """Where PostgreSQL's programs may be: beside initdb on PATH (and where that
    link points), then Debian's versioned directories, newest first."""
    dirs: list[Path] = []
    initdb = shutil.which("initdb")
    if initdb:
        dirs += [Path(initdb).parent, Path(initdb).resolve().parent]
    dirs += [Path(d) for d in sorted(glob.glob(_LIB_PATTERN), key=_version_key, reverse=True)]
    return list(dict.fromkeys(dirs))


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def server_binaries() -> tuple[Path, Path]:
    """(initdb, postgres) of one installation."""
    for directory in _bin_dirs():
        initdb, postgres = directory / "initdb", directory / "postgres"
        if _executable(initdb) and _executable(postgres):
            return initdb, postgres
    raise ServiceUnavailable(
        f"no PostgreSQL server (initdb and postgres) on PATH or in {_LIB_PATTERN}: "
        f"install it ({_INSTALL}) or pass {_GIVE_URL}"
    )


def psql_binary() -> Path:
    """psql, preferably the server's own (same version)."""
    for directory in _bin_dirs():
        if _executable(directory / "psql"):
            return directory / "psql"
    found = shutil.which("psql")
    if found:
        return Path(found)
    raise ServiceUnavailable(
        "no psql on PATH or beside the PostgreSQL server: the harness needs it to query "
        "the server; install it (apt-get install postgresql-client)"
    )


def _server_env() -> dict[str, str]:
    # A caller's PGDATA, PGPORT, PGOPTIONS... must not reach our cluster.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _psql(url: str, sql: str, timeout: float = _QUERY_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``sql`` through psql at ``url``; the password travels in PGPASSWORD,
    not on a command line that ps shows."""
    fields = url_fields(url, 5432)
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    if len(netloc) == 2:
        user = netloc[0].split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}@{netloc[1]}")
    env = _server_env()
    env["PGCONNECT_TIMEOUT"] = "5"
    if fields["password"]:
        env["PGPASSWORD"] = fields["password"]
    command = [str(psql_binary()), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
    command += ["-d", urlunsplit(parts), "-c", sql]
    return run_client(command, env, timeout)


def check(url: str) -> str | None:
    """None when ``select 1`` answers 1 at ``url``; else psql's complaint."""
    return select_one_answer(_psql(url, "select 1", timeout=30.0), "psql")


def run_setup(url: str, statements: Sequence[str]) -> None:
    run_statements(_psql, url, statements, "PostgreSQL")


@contextlib.contextmanager
def postgresql_process(work_dir: Path) -> Iterator[Started]:
    """A private PostgreSQL for the block; yields (URL, postmaster process)."""
    initdb, postgres = server_binaries()
    psql_binary()  # missing: say so before initdb takes its seconds
    account = server_account("postgres")
    as_account: dict[str, Any] = account.popen_options() if account else {}
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / "postgresql.log"
    with private_dir(work_dir, account, "pg") as home, open(log_path, "wb") as log:
        data = home / "data"
        command = [str(initdb), "-D", str(data), "-U", "postgres", "--auth=trust"]
        command += ["-E", "UTF8", "--locale=C", "--no-sync"]
        try:
            done = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=home, env=_server_env(), timeout=_INITDB_TIMEOUT, check=False, **as_account,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise ServiceUnavailable(
                f"initdb did not finish within {_INITDB_TIMEOUT:.0f} s; {log_path} ends:\n"
                f"{log_tail(log_path)}"
            ) from None
        if done.returncode != 0:
            log.flush()
            raise ServiceUnavailable(
                f"initdb {describe_exit(done.returncode)}; {log_path} ends:\n{log_tail(log_path)}"
            )
        (data / "pg_hba.conf").write_text(_HBA)  # keeps the owner initdb gave it

        def launch(port: int) -> subprocess.Popen[bytes]:
            command = [str(postgres), "-D", str(data), "-p", str(port)]
            command += ["-c", f"unix_socket_directories={home}"]
            for setting in _SETTINGS:
                command += ["-c", setting]
            return subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=home, env=_server_env(), start_new_session=True, **as_account,
            )  # fmt: skip

        with serving(
            launch, _url, check, "postgres", log_path, _START_TIMEOUT, signal.SIGINT, _STOP_TIMEOUT
        ) as started:
            yield started


def _url(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"
