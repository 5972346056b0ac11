"""The built-in pg8000 suite: its manifest loads and names a probe that imports
(seconds, no server); the real run, at the newest release and at the previous
minor line, is marked ``compat`` (minutes, a private PostgreSQL)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from greenpatch.compat_tests.harness import HarnessOptions, run_suite
from greenpatch.compat_tests.library_probes import pg8000 as pg8000_probe
from greenpatch.compat_tests.manifest import builtin_suites, resolve_suite
from greenpatch.compat_tests.probes import ProbeContext, ProbeSetupError, load_callable


def test_the_manifest_is_built_in_and_names_an_importable_probe() -> None:
    assert "pg8000" in builtin_suites()
    manifest = resolve_suite("pg8000")
    assert manifest.distribution == "pg8000"
    assert manifest.tests == ("test",)
    assert [service.name for service in manifest.services] == ["postgresql"]
    assert manifest.probe is not None
    assert manifest.probe.services == ("postgresql",)
    # A pure-Python driver: the manifest must not excuse its probe from cooperating.
    assert manifest.probe.blocks is None
    assert load_callable(manifest.probe.callable) is pg8000_probe.probe


def test_the_service_passes_what_the_conftests_read() -> None:
    (service,) = resolve_suite("pg8000").services
    assert service.variables == {"PGHOST": "{host}", "PGPORT": "{port}"}
    # The conftests send the password "pw" when PGPASSWORD is unset.
    assert "ALTER USER postgres PASSWORD 'pw'" in service.setup


def test_every_deselection_names_a_test_path_and_a_reason() -> None:
    manifest = resolve_suite("pg8000")
    ids = {entry.id for entry in manifest.deselect}
    assert {"test/native/auth", "test/dbapi/auth", "test/legacy/auth"} <= ids
    for entry in manifest.deselect:
        assert entry.id is not None and entry.id.startswith("test/"), entry
        assert len(entry.reason) > 20, entry


def test_connection_arguments_come_from_the_service_url() -> None:
    arguments = pg8000_probe.connection_arguments("postgresql://postgres@127.0.0.1:54321/postgres")
    assert arguments == {
        "user": "postgres",
        "host": "127.0.0.1",
        "port": 54321,
        "database": "postgres",
    }
    arguments = pg8000_probe.connection_arguments("postgres://u%40x:p%2Fw@[::1]/")
    assert arguments == {"user": "u@x", "host": "::1", "port": 5432, "password": "p/w"}


@pytest.mark.parametrize("url", ["mysql://root@127.0.0.1:3306/test", "postgresql:///postgres"])
def test_connection_arguments_refuse_what_is_not_a_postgresql_server(url: str) -> None:
    with pytest.raises(ProbeSetupError, match="postgresql://"):
        pg8000_probe.connection_arguments(url)


def test_the_probe_without_a_service_says_what_it_needs() -> None:
    with pytest.raises(ProbeSetupError, match="--service postgresql=URL"):
        pg8000_probe.probe(ProbeContext(delay=0.3))


@pytest.mark.compat
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("version", [None, "1.30.5"])
def test_the_suite_has_no_regression_and_its_probe_cooperates(
    version: str | None, tmp_path: Path
) -> None:
    out = Path(os.environ.get("GREENPATCH_COMPAT_OUT", tmp_path))
    result, path = run_suite(resolve_suite("pg8000"), HarnessOptions(out_dir=out, version=version))
    assert result.not_run_reason is None, result.not_run_reason
    assert not result.incomplete, result.notes
    regressions = {test.nodeid: test.error for test in result.regressions()}
    assert not regressions, f"see {path}"
    assert result.probe is not None
    assert result.probe.get("cooperative"), result.probe
