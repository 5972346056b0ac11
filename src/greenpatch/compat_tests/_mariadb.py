"""MariaDB for the suites: a private server in a fresh data directory.

``mariadb-install-db`` makes the system tables (root with the ordinary password
method and an empty password, for localhost, 127.0.0.1 and ::1; no anonymous
users); ``mariadbd`` serves them on a free loopback port with its socket in its
own directory, reading no option file of the machine (``--no-defaults``: the
machine's my.cnf would move the socket, the logs, the character set).  InnoDB is
small and lazy (a test database is thrown away).  Readiness is a real query
through the ``mariadb`` client; so are the setup statements.  A ``test``
database exists (client test suites assume it).  The server is stopped with
SIGTERM (a normal shutdown), then SIGKILL; its directory is removed, its log
stays in the work dir.

MariaDB refuses to run as root unless told to: as root, the install and the
server run as the ``mysql`` user (or ``nobody``), see
``services.server_account``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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

#: Searched after PATH: a non-root PATH often lacks the sbin directories.
_EXTRA_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/libexec", "/usr/bin", "/usr/local/bin")
_INSTALL = "apt-get install mariadb-server"
_GIVE_URL = "--service mariadb=mysql://USER[:PASSWORD]@HOST:PORT/DATABASE"
_INSTALL_TIMEOUT = 180.0
_START_TIMEOUT = 60.0
_STOP_TIMEOUT = 30.0
_QUERY_TIMEOUT = 60.0

#: For the install and the server alike (the redo log's size is set at install).
_INNODB = (
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=16M",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-doublewrite=0",
)

#: utf8mb4 as Debian's packaged configuration has it (the built-in is latin1).
_SERVER = (
    "--bind-address=127.0.0.1",
    "--skip-networking=0",
    "--skip-name-resolve",
    "--skip-log-bin",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
)


def _find(*names: str) -> Path | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    for name in names:
        for directory in _EXTRA_DIRS:
            path = Path(directory) / name
            if path.is_file() and os.access(path, os.X_OK):
                return path
    return None


def server_binaries() -> tuple[Path, Path]:
    """(mariadb-install-db, mariadbd)."""
    install = _find("mariadb-install-db", "mysql_install_db")
    server = _find("mariadbd", "mysqld")
    if install is None or server is None:
        missing = " and ".join(
            name
            for name, path in (("mariadb-install-db", install), ("mariadbd", server))
            if path is None
        )
        raise ServiceUnavailable(
            f"no {missing} on PATH or in {', '.join(_EXTRA_DIRS)}: install MariaDB "
            f"({_INSTALL}) or pass {_GIVE_URL}"
        )
    return install, server


def client_binary() -> Path:
    client = _find("mariadb", "mysql")
    if client is None:
        raise ServiceUnavailable(
            "no mariadb client on PATH: the harness needs it to query the server; "
            "install it (apt-get install mariadb-client)"
        )
    return client


def _client(
    url: str, sql: str, timeout: float = _QUERY_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``sql`` through the mariadb client at ``url`` (over TCP, as the tests
    will connect); the password travels in MYSQL_PWD, not on the command line."""
    fields = url_fields(url, 3306)
    # --no-defaults first: the machine's ~/.my.cnf and /etc/mysql must not choose for us.
    command = [str(client_binary()), "--no-defaults", "--protocol=TCP", "--connect-timeout=5"]
    command += ["-h", fields["host"] or "127.0.0.1", "-P", fields["port"], "-N", "-B"]
    if fields["user"]:
        command += ["-u", fields["user"]]
    if fields["database"]:
        command += ["-D", fields["database"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQL")}
    if fields["password"]:
        env["MYSQL_PWD"] = fields["password"]
    return run_client([*command, "-e", sql], env, timeout)


def check(url: str) -> str | None:
    """None when ``select 1`` answers 1 at ``url``; else the client's complaint."""
    return select_one_answer(_client(url, "select 1", timeout=30.0), "mariadb")


def run_setup(url: str, statements: Sequence[str]) -> None:
    run_statements(_client, url, statements, "MariaDB")


@contextlib.contextmanager
def mariadb_process(work_dir: Path) -> Iterator[Started]:
    """A private MariaDB for the block; yields (URL, mariadbd process)."""
    install, server = server_binaries()
    client_binary()  # missing: say so before the install takes its seconds
    account = server_account("mysql")
    as_account: dict[str, Any] = account.popen_options() if account else {}
    work_dir.mkdir(parents=True, exist_ok=True)
    log_path = work_dir / "mariadb.log"
    with private_dir(work_dir, account, "my") as home, open(log_path, "wb") as log:
        data = home / "data"
        command = [str(install), "--no-defaults", f"--datadir={data}"]
        command += ["--auth-root-authentication-method=normal", "--skip-test-db"]
        command += ["--skip-name-resolve", *_INNODB]
        try:
            done = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=home, timeout=_INSTALL_TIMEOUT, check=False, **as_account,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise ServiceUnavailable(
                f"mariadb-install-db did not finish within {_INSTALL_TIMEOUT:.0f} s; "
                f"{log_path} ends:\n{log_tail(log_path)}"
            ) from None
        if done.returncode != 0:
            log.flush()
            raise ServiceUnavailable(
                f"mariadb-install-db {describe_exit(done.returncode)}; {log_path} ends:\n"
                f"{log_tail(log_path)}"
            )

        def launch(port: int) -> subprocess.Popen[bytes]:
            command = [str(server), "--no-defaults", f"--datadir={data}", f"--port={port}"]
            command += [f"--socket={home / 'mariadbd.sock'}", f"--pid-file={home / 'mariadbd.pid'}"]
            return subprocess.Popen(
                [*command, *_SERVER, *_INNODB], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, cwd=home, start_new_session=True, **as_account,
            )  # fmt: skip

        with serving(
            launch, _bare_url, check, "mariadbd", log_path, _START_TIMEOUT,
            stop_timeout=_STOP_TIMEOUT,
        ) as (bare, process):  # fmt: skip
            # The database client test suites assume; the URL names it.
            run_setup(bare, ["CREATE DATABASE IF NOT EXISTS test"])
            yield f"{bare}/test", process


def _bare_url(port: int) -> str:
    """The readiness URL: no database yet (``test`` is made once the server answers)."""
    return f"mysql://root@127.0.0.1:{port}"
