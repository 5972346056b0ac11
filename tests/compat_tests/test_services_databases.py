"""Services: a private PostgreSQL and MariaDB come up, answer queries, run the
setup statements, and are always stopped.

Every server here is started by the harness's own code on a free port; the
machine's servers (5432, 3306) are never used.  One server of each kind is
shared by the module's read-only checks; the stop tests start their own.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenpatch.compat_tests import _mariadb, _postgresql
from greenpatch.compat_tests.manifest import ServiceSpec
from greenpatch.compat_tests.services import (
    RunningServices,
    ServiceUnavailable,
    running_services,
    service_arguments,
)


def _has(find: object) -> bool:
    try:
        find()  # type: ignore[operator]
    except ServiceUnavailable:
        return False
    return True


needs_postgresql = pytest.mark.skipif(
    not (_has(_postgresql.server_binaries) and _has(_postgresql.psql_binary)),
    reason="PostgreSQL (initdb, postgres, psql) is not installed",
)
needs_psql = pytest.mark.skipif(not _has(_postgresql.psql_binary), reason="no psql")
needs_mariadb = pytest.mark.skipif(
    not (_has(_mariadb.server_binaries) and _has(_mariadb.client_binary)),
    reason="MariaDB (mariadb-install-db, mariadbd, mariadb) is not installed",
)
needs_mariadb_client = pytest.mark.skipif(not _has(_mariadb.client_binary), reason="no client")

PG = ServiceSpec(
    name="postgresql",
    env="PG_URL",
    variables={"PGHOST": "{host}", "PGPORT": "{port}", "PGUSER": "{user}", "DB": "{database}"},
    setup=("CREATE DATABASE gp_setup", "CREATE ROLE gp_user LOGIN PASSWORD 'secret'"),
)
MARIADB = ServiceSpec(
    name="mariadb",
    option="--mysql-url",
    variables={"MYSQL_HOST": "{host}", "MYSQL_PORT": "{port}", "MYSQL_DATABASE": "{database}"},
    setup=("CREATE DATABASE gp_setup", "CREATE USER 'gp'@'127.0.0.1' IDENTIFIED BY 'secret'"),
)


@contextlib.contextmanager
def _started(spec: ServiceSpec, work_dir: Path) -> Iterator[tuple[str, RunningServices]]:
    with running_services([spec], {}, work_dir) as urls:
        yield urls[spec.name], urls


def _with_credentials(url: str, credentials: str, database: str | None = None) -> str:
    """mysql://root@h:p/test -> mysql://CREDENTIALS@h:p/DATABASE."""
    scheme, rest = url.split("://", 1)
    address, _, path = rest.split("@", 1)[1].partition("/")
    return f"{scheme}://{credentials}@{address}/{path if database is None else database}"


def _owner(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^Uid:\s+(\d+)", status, re.M)
    assert match
    return int(match.group(1))


# -- PostgreSQL ----------------------------------------------------------------


@pytest.fixture(scope="module")
def postgresql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RunningServices]]:
    with _started(PG, tmp_path_factory.mktemp("pg")) as started:
        yield started


@needs_postgresql
def test_postgresql_url_answers_a_query(postgresql: tuple[str, RunningServices]) -> None:
    url, urls = postgresql
    assert re.fullmatch(r"postgresql://postgres@127\.0\.0\.1:\d+/postgres", url)
    assert not url.endswith(":5432/postgres")
    assert _postgresql.check(url) is None
    settings = _postgresql._psql(url, "select current_setting('fsync'), "
                                 "current_setting('max_prepared_transactions')")  # fmt: skip
    assert settings.stdout.strip() == "off|10"
    assert urls.lost() == {}


@needs_postgresql
def test_postgresql_setup_statements_ran(postgresql: tuple[str, RunningServices]) -> None:
    url, _ = postgresql
    assert _postgresql.check(_with_credentials(url, "postgres", "gp_setup")) is None
    # Other roles log in with their password: auth tests can make their own roles.
    assert _postgresql.check(_with_credentials(url, "gp_user:secret")) is None
    refused = _postgresql.check(_with_credentials(url, "gp_user:wrong"))
    assert refused is not None and "password authentication failed" in refused


@needs_postgresql
def test_postgresql_superuser_is_trusted(postgresql: tuple[str, RunningServices]) -> None:
    url, _ = postgresql
    assert _postgresql.check(_with_credentials(url, "postgres:any-password")) is None


@needs_postgresql
def test_postgresql_bad_statement_names_it_and_the_error(
    postgresql: tuple[str, RunningServices],
) -> None:
    url, _ = postgresql
    with pytest.raises(ServiceUnavailable) as caught:
        _postgresql.run_setup(url, ["select 1", "CREATE TABLE (oops"])
    message = str(caught.value)
    assert "'CREATE TABLE (oops'" in message
    assert "syntax error" in message
    assert url in message


@needs_postgresql
@pytest.mark.skipif(os.geteuid() != 0, reason="runs as the caller when not root")
def test_postgresql_runs_unprivileged_when_we_are_root(
    postgresql: tuple[str, RunningServices],
) -> None:
    _, urls = postgresql
    assert _owner(urls.started["postgresql"].pid) == pwd.getpwnam("postgres").pw_uid


@needs_postgresql
def test_postgresql_variables_reach_the_tests(postgresql: tuple[str, RunningServices]) -> None:
    url, urls = postgresql
    args, env = service_arguments([PG], urls)
    port = url.rsplit(":", 1)[1].split("/")[0]
    assert args == []
    assert env == {
        "PG_URL": url,
        "PGHOST": "127.0.0.1",
        "PGPORT": port,
        "PGUSER": "postgres",
        "DB": "postgres",
    }


@needs_postgresql
def test_postgresql_is_gone_after_an_exception_in_the_block(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with _postgresql.postgresql_process(tmp_path) as (url, process):
            data = Path(process.args[process.args.index("-D") + 1])
            assert data.is_dir()
            raise RuntimeError("boom")
    assert process.returncode is not None
    assert not data.exists()
    assert _postgresql.check(url) is not None
    (log,) = tmp_path.glob("postgresql.log")
    assert "database system is shut down" in log.read_text()


@needs_postgresql
def test_postgresql_failing_setup_is_unavailable_and_stops_the_server(tmp_path: Path) -> None:
    spec = ServiceSpec(name="postgresql", env="X", setup=("CREATE DATABASE postgres",))
    with pytest.raises(ServiceUnavailable, match="already exists") as caught:
        with running_services([spec], {}, tmp_path):
            pass
    match = re.search(r"postgresql://postgres@127\.0\.0\.1:\d+/postgres", str(caught.value))
    assert match and "'CREATE DATABASE postgres'" in str(caught.value)
    assert _postgresql.check(match.group()) is not None  # nobody answers there now


@needs_postgresql
def test_postgresql_killed_under_the_suite_is_reported_lost(tmp_path: Path) -> None:
    with _started(PG, tmp_path) as (url, urls):
        process = urls.started["postgresql"]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        assert urls.lost() == {"postgresql": "killed by SIGKILL"}
        assert urls.describe_loss() == (
            f"service postgresql ({url}, started by the harness) died: killed by SIGKILL"
        )


def test_postgresql_missing_binaries_say_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_postgresql, "_LIB_PATTERN", str(tmp_path / "lib" / "*" / "bin"))
    with pytest.raises(ServiceUnavailable) as caught:
        with running_services([PG], {}, tmp_path):
            pass
    assert "apt-get install postgresql" in str(caught.value)
    assert "--service postgresql=postgresql://" in str(caught.value)


def test_postgresql_binaries_newest_debian_version_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in ("9.6", "13", "15"):
        directory = tmp_path / "lib" / version / "bin"
        directory.mkdir(parents=True)
        for name in ("initdb", "postgres"):
            (directory / name).write_text("#!/bin/sh\n")
            (directory / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(_postgresql, "_LIB_PATTERN", str(tmp_path / "lib" / "*" / "bin"))
    initdb, postgres = _postgresql.server_binaries()
    assert initdb == tmp_path / "lib" / "15" / "bin" / "initdb"
    assert postgres.parent == initdb.parent


@needs_psql
def test_postgresql_given_url_with_nobody_there_is_unavailable(tmp_path: Path) -> None:
    url = "postgresql://postgres:hunter2@127.0.0.1:1/postgres"
    with pytest.raises(ServiceUnavailable) as caught:
        with running_services([PG], {"postgresql": url}, tmp_path):
            pass
    message = str(caught.value)
    assert message.startswith(
        "no PostgreSQL server answers at postgresql://postgres:***@127.0.0.1:1/postgres: "
    )
    assert "hunter2" not in message
    assert not list(tmp_path.iterdir())  # nothing was started for a given URL


# -- MariaDB -------------------------------------------------------------------


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, RunningServices]]:
    with _started(MARIADB, tmp_path_factory.mktemp("mariadb")) as started:
        yield started


@needs_mariadb
def test_mariadb_url_answers_a_query(mariadb: tuple[str, RunningServices]) -> None:
    url, urls = mariadb
    assert re.fullmatch(r"mysql://root@127\.0\.0\.1:\d+/test", url)
    assert not url.endswith(":3306/test")
    assert _mariadb.check(url) is None  # the test database exists
    charset = _mariadb._client(url, "select @@character_set_server")
    assert charset.stdout.strip() == "utf8mb4"
    assert urls.lost() == {}


@needs_mariadb
def test_mariadb_setup_statements_ran(mariadb: tuple[str, RunningServices]) -> None:
    url, _ = mariadb
    assert _mariadb.check(_with_credentials(url, "root", "gp_setup")) is None
    assert _mariadb.check(_with_credentials(url, "gp:secret", "")) is None
    refused = _mariadb.check(_with_credentials(url, "gp:wrong", ""))
    assert refused is not None and "Access denied" in refused


@needs_mariadb
def test_mariadb_bad_statement_names_it_and_the_error(
    mariadb: tuple[str, RunningServices],
) -> None:
    url, _ = mariadb
    with pytest.raises(ServiceUnavailable) as caught:
        _mariadb.run_setup(url, ["CREATE TABLE (oops"])
    message = str(caught.value)
    assert "'CREATE TABLE (oops'" in message
    assert "ERROR 1064" in message and "SQL syntax" in message


@needs_mariadb
@pytest.mark.skipif(os.geteuid() != 0, reason="runs as the caller when not root")
def test_mariadb_runs_unprivileged_when_we_are_root(mariadb: tuple[str, RunningServices]) -> None:
    _, urls = mariadb
    try:
        expected = pwd.getpwnam("mysql").pw_uid
    except KeyError:
        expected = pwd.getpwnam("nobody").pw_uid
    assert _owner(urls.started["mariadb"].pid) == expected


@needs_mariadb
def test_mariadb_variables_and_option_reach_the_tests(
    mariadb: tuple[str, RunningServices],
) -> None:
    url, urls = mariadb
    args, env = service_arguments([MARIADB], urls)
    assert args == [f"--mysql-url={url}"]
    assert env == {
        "MYSQL_HOST": "127.0.0.1",
        "MYSQL_PORT": url.rsplit(":", 1)[1].split("/")[0],
        "MYSQL_DATABASE": "test",
    }


@needs_mariadb
def test_mariadb_is_gone_after_an_exception_in_the_block(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with _mariadb.mariadb_process(tmp_path) as (url, process):
            (datadir,) = [a for a in process.args if str(a).startswith("--datadir=")]
            data = Path(str(datadir).split("=", 1)[1])
            assert data.is_dir()
            raise RuntimeError("boom")
    assert process.returncode == 0  # a normal shutdown, not the SIGKILL fallback
    assert not data.exists()
    assert _mariadb.check(url) is not None
    (log,) = tmp_path.glob("mariadb.log")
    assert "Shutdown complete" in log.read_text()


def test_mariadb_missing_binaries_say_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(_mariadb, "_EXTRA_DIRS", (str(tmp_path),))
    with pytest.raises(ServiceUnavailable) as caught:
        with running_services([MARIADB], {}, tmp_path):
            pass
    assert "apt-get install mariadb-server" in str(caught.value)
    assert "--service mariadb=mysql://" in str(caught.value)


@needs_mariadb_client
def test_mariadb_given_url_with_nobody_there_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailable, match=r"^no MariaDB server answers at mysql://root@"):
        with running_services([MARIADB], {"mariadb": "mysql://root@127.0.0.1:1/test"}, tmp_path):
            pass
