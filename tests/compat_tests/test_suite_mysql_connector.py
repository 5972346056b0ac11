"""The built-in mysql-connector suite: its manifest loads, names a probe that
imports, and its pytest plugin fills the sdist's ``tests`` globals as the
sdist's own runner does (seconds, no server: a stand-in connector answers).
The real run, at the newest release and the previous major, is marked
``compat`` (minutes, a private MariaDB)."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from greenpatch.compat_tests.harness import HarnessOptions, run_suite
from greenpatch.compat_tests.library_probes import mysql_connector as plugin
from greenpatch.compat_tests.manifest import builtin_suites, resolve_suite
from greenpatch.compat_tests.probes import ProbeContext, ProbeSetupError, load_callable

PLUGIN = "greenpatch.compat_tests.library_probes.mysql_connector"


def test_the_manifest_is_built_in_and_names_an_importable_probe() -> None:
    assert "mysql-connector" in builtin_suites()
    manifest = resolve_suite("mysql-connector")
    assert manifest.distribution == "mysql-connector-python"
    assert manifest.tests == ("tests",)
    assert manifest.probe is not None
    assert manifest.probe.services == ("mariadb",)
    # A pure-Python driver: the manifest must not excuse its probe from cooperating.
    assert manifest.probe.blocks is None
    assert load_callable(manifest.probe.callable) is plugin.probe


def test_pytest_loads_the_plugin_and_the_service_passes_what_it_reads() -> None:
    manifest = resolve_suite("mysql-connector")
    assert ["-p", PLUGIN] == list(manifest.pytest_args[:2])
    (service,) = manifest.services
    assert service.name == "mariadb"
    assert service.variables == {
        "MYSQL_HOST": "{host}",
        "MYSQL_PORT": "{port}",
        "MYSQL_USER": "{user}",
        "MYSQL_PASSWORD": "{password}",
    }


def test_every_deselection_names_a_test_path_and_a_reason() -> None:
    manifest = resolve_suite("mysql-connector")
    ids = {entry.id for entry in manifest.deselect}
    # The C extension is another implementation: never run here.
    assert {"tests/cext", "tests/qa/test_qa_wl16752.py"} <= ids
    for entry in manifest.deselect:
        assert entry.id is not None and entry.id.startswith("tests/"), entry
        assert len(entry.reason) > 20, entry
    assert len(ids) == len(manifest.deselect), "a test path is deselected twice"


def test_every_expected_failure_names_a_test_and_its_root_cause() -> None:
    expected = resolve_suite("mysql-connector").expected
    assert "tests/test_bugs.py::Bug809033::test_lost_connection" in {e.id for e in expected}
    for entry in expected:
        assert entry.id.startswith("tests/test_bugs.py::"), entry
        assert len(entry.reason) > 100, entry


def test_server_config_comes_from_the_service_url() -> None:
    assert plugin.server_config("mysql://root@127.0.0.1:33306/test") == {
        "host": "127.0.0.1",
        "port": 33306,
        "user": "root",
        "password": "",
        "database": "test",
    }
    assert plugin.server_config("mariadb://u%40x:p%2Fw@[::1]/") == {
        "host": "::1",
        "port": 3306,
        "user": "u@x",
        "password": "p/w",
        "database": None,
    }


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1/postgres", "mysql:///test"])
def test_server_config_refuses_what_is_not_a_mysql_server(url: str) -> None:
    with pytest.raises(ProbeSetupError, match="mysql://"):
        plugin.server_config(url)


def test_the_probe_without_a_service_says_what_it_needs() -> None:
    with pytest.raises(ProbeSetupError, match="--service mariadb=URL"):
        plugin.probe(ProbeContext(delay=0.3))


# -- the plugin, against stand-ins for the sdist's tests package and the connector --
class _Cursor:
    def __init__(self, answers: dict[str, Any], log: list[str]) -> None:
        self.answers, self.log, self.row = answers, log, None

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        self.log.append(statement % params if params else statement)
        key = params[0] if statement.startswith("SHOW VARIABLES") else statement
        self.row = self.answers.get(key)

    def fetchone(self) -> Any:
        return self.row

    def close(self) -> None:
        pass


class _Connection:
    def __init__(self, cursor: _Cursor) -> None:
        self._cursor = cursor

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def cursor(self) -> _Cursor:
        return self._cursor


class _ExternalServer:
    def __init__(self, cnf: str, name: str) -> None:
        self.name = name
        self.client_config: dict[str, Any] = {}
        self.xplugin_config: dict[str, Any] = {}


def _stand_ins(monkeypatch: pytest.MonkeyPatch, cext_seen: list[object]) -> tuple[Any, Any]:
    """Fake ``tests``, ``tests.mysqld`` and ``mysql.connector`` modules."""
    tests = types.ModuleType("tests")
    tests.MYSQL_SERVERS = []  # type: ignore[attr-defined]
    tests.MYSQL_EXTERNAL_SERVER = False  # type: ignore[attr-defined]
    tests.IPV6_AVAILABLE = True  # type: ignore[attr-defined]
    mysqld = types.ModuleType("tests.mysqld")
    mysqld.MySQLExternalServer = _ExternalServer  # type: ignore[attr-defined]
    connector = types.ModuleType("mysql.connector")
    connector.log = []  # type: ignore[attr-defined]
    connector.calls = []  # type: ignore[attr-defined]
    answers = {
        "SELECT VERSION()": ("10.11.19-MariaDB-0+deb12u1",),
        "license": ("license", "GPL"),
        "socket": ("socket", "/tmp/x/mariadbd.sock"),
    }

    def connect(**kwargs: Any) -> _Connection:
        # The real module would have imported the C extension by now.
        cext_seen.append(sys.modules.get("_mysql_connector", "absent"))
        connector.calls.append(kwargs)  # type: ignore[attr-defined]
        return _Connection(_Cursor(answers, connector.log))  # type: ignore[attr-defined]

    connector.connect = connect  # type: ignore[attr-defined]
    connector.HAVE_CEXT = False  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests", tests)
    monkeypatch.setitem(sys.modules, "tests.mysqld", mysqld)
    monkeypatch.setitem(sys.modules, "mysql.connector", connector)
    # Recorded so that monkeypatch removes the plugin's entry afterwards.
    monkeypatch.setitem(sys.modules, "_mysql_connector", "the C extension")
    return tests, connector


def test_the_plugin_configures_the_tests_as_the_runner_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cext_seen: list[object] = []
    tests, connector = _stand_ins(monkeypatch, cext_seen)
    environ = {"MYSQL_HOST": "127.0.0.2", "MYSQL_PORT": "40001", "MYSQL_USER": "u"}
    plugin.configure_tests(environ)

    assert cext_seen == [None], "the C extension must be hidden before the connector is used"
    (server,) = tests.MYSQL_SERVERS
    assert server.client_config == {
        "host": "127.0.0.2",
        "port": 40001,
        "user": "u",
        "password": "",
        "database": "myconnpy",
        "connection_timeout": 60,
        "unix_socket": None,
    }
    assert connector.calls == [
        {"host": "127.0.0.2", "port": 40001, "user": "u", "password": "", "use_pure": True}
    ]
    # A fresh database, as the runner makes for each run.
    assert connector.log[:2] == [
        "DROP DATABASE IF EXISTS myconnpy",
        "CREATE DATABASE myconnpy CHARACTER SET utf8mb4",
    ]
    assert tests.MYSQL_EXTERNAL_SERVER is True
    assert tests.MYSQL_VERSION == (10, 11, 19)
    assert tests.MYSQL_VERSION_TXT == "10.11.19"
    assert tests.MYSQL_LICENSE == "GPL"
    assert server.unix_socket == "/tmp/x/mariadbd.sock"
    assert server.mysqlx_unix_socket is None
    assert tests.MYSQL_ML_ENABLED is False
    assert tests.IPV6_AVAILABLE is False


def test_the_plugin_refuses_a_connector_whose_c_extension_is_still_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _tests, connector = _stand_ins(monkeypatch, [])
    connector.HAVE_CEXT = True
    with pytest.raises(RuntimeError, match="C extension"):
        plugin.configure_tests({"MYSQL_PORT": "40001"})


def test_the_plugin_stops_pytest_without_a_server_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MYSQL_PORT", raising=False)
    with pytest.raises(pytest.UsageError, match="MYSQL_PORT"):
        plugin.pytest_configure(None)


def test_the_plugin_names_the_failure_to_prepare(monkeypatch: pytest.MonkeyPatch) -> None:
    _stand_ins(monkeypatch, [])

    def refuse(**kwargs: Any) -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(sys.modules["mysql.connector"], "connect", refuse)
    monkeypatch.setenv("MYSQL_PORT", "40001")
    with pytest.raises(pytest.UsageError, match=r"could not prepare the tests.*refused"):
        plugin.pytest_configure(None)


@pytest.mark.compat
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("version", [None, "9.7.0"])
def test_the_suite_has_no_regression_and_its_probe_cooperates(
    version: str | None, tmp_path: Path
) -> None:
    out = Path(os.environ.get("GREENPATCH_COMPAT_OUT", tmp_path))
    result, path = run_suite(
        resolve_suite("mysql-connector"), HarnessOptions(out_dir=out, version=version)
    )
    assert result.not_run_reason is None, result.not_run_reason
    assert not result.incomplete, result.notes
    regressions = {test.nodeid: test.error for test in result.regressions()}
    assert not regressions, f"see {path}"
    assert result.probe is not None
    assert result.probe.get("cooperative"), result.probe
