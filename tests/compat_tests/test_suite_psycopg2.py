"""The built-in psycopg2 suite: its manifest loads and names a probe that imports
(seconds, no server, no build); the real run, at the newest release and at the
previous major line, is marked ``compat`` (minutes: psycopg2 is compiled from its
sdist, and the tests need a private PostgreSQL).  Under the patch the psycopg2
plugin registers its wait callback: the probe cooperates, and what stays
expected is what psycopg2 itself refuses in green mode (COPY, large objects)
and one busy loop of C calls."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from greenpatch.compat_tests.harness import HarnessOptions, run_suite
from greenpatch.compat_tests.library_probes import psycopg2 as psycopg2_probe
from greenpatch.compat_tests.manifest import builtin_suites, resolve_suite
from greenpatch.compat_tests.probes import ProbeContext, ProbeSetupError, load_callable


def test_the_manifest_is_built_in_and_names_an_importable_probe() -> None:
    assert "psycopg2" in builtin_suites()
    manifest = resolve_suite("psycopg2")
    assert manifest.distribution == "psycopg2"
    assert [service.name for service in manifest.services] == ["postgresql"]
    assert manifest.probe is not None
    assert manifest.probe.services == ("postgresql",)
    assert load_callable(manifest.probe.callable) is psycopg2_probe.probe


def test_the_probe_is_not_declared_blocking() -> None:
    # The psycopg2 plugin's wait callback makes libpq's waits green.
    probe = resolve_suite("psycopg2").probe
    assert probe is not None and probe.blocks is None


def test_the_service_fills_what_testconfig_reads() -> None:
    (service,) = resolve_suite("psycopg2").services
    assert service.variables == {
        "PSYCOPG2_TESTDB": "{database}",
        "PSYCOPG2_TESTDB_HOST": "{host}",
        "PSYCOPG2_TESTDB_PORT": "{port}",
        "PSYCOPG2_TESTDB_USER": "{user}",
    }
    # Left unset on purpose: the replication tests then skip themselves.
    assert "PSYCOPG2_TEST_REPL_DSN" not in service.variables
    assert "PSYCOPG2_TEST_REPL_DSN" not in resolve_suite("psycopg2").env


def test_every_expected_failure_names_one_test_and_its_cause() -> None:
    manifest = resolve_suite("psycopg2")
    causes: dict[str, int] = {}
    for entry in manifest.expected:
        assert entry.id.startswith("tests/test_") and entry.id.count("::") == 2, entry
        cause = (
            "copy" if "refuses copy_from" in entry.reason
            else "lobject" if "refuses large objects" in entry.reason
            else "busy loop" if "C calls" in entry.reason
            else entry.reason
        )  # fmt: skip
        causes[cause] = causes.get(cause, 0) + 1
    assert causes == {"copy": 18, "lobject": 42, "busy loop": 1}
    # Green now: cancels from another thread, overlapping queries, the deadlock.
    for passing in (
        "tests/test_cancel.py::CancelTests::test_cancel",
        "tests/test_connection.py::ConnectionTests::test_concurrent_execution",
        "tests/test_transaction.py::DeadlockSerializationTests::test_deadlock",
        "tests/test_copy.py::CopyTests::test_copy_from_segfault",  # copies in a subprocess
        "tests/test_lobject.py::LargeObjectTests::test_connection_needed",
    ):
        assert manifest.expected_reason(passing) is None, passing


def test_the_probe_without_a_service_says_what_it_needs() -> None:
    with pytest.raises(ProbeSetupError, match="--service postgresql=URL"):
        psycopg2_probe.probe(ProbeContext(delay=0.3))


def test_the_probe_refuses_a_url_of_another_server() -> None:
    context = ProbeContext(delay=0.3, service_urls={"postgresql": "mysql://root@127.0.0.1/x"})
    with pytest.raises(ProbeSetupError, match="postgresql://"):
        psycopg2_probe.probe(context)


@pytest.mark.compat
@pytest.mark.timeout(1800)
@pytest.mark.parametrize(
    ("version", "python"),
    # 2.8.6 does not import on Python 3.11 (its module init fails: support for
    # 3.11 came with 2.9.5), so the previous major line runs on 3.9.
    [(None, None), ("2.8.6", "3.9")],
)
def test_the_suite_has_no_regression_and_its_probe_cooperates(
    version: str | None, python: str | None, tmp_path: Path
) -> None:
    out = Path(os.environ.get("GREENPATCH_COMPAT_OUT", tmp_path))
    options = HarnessOptions(out_dir=out, version=version, python=python)
    result, path = run_suite(resolve_suite("psycopg2"), options)
    assert result.not_run_reason is None, result.not_run_reason
    assert not result.incomplete, result.notes
    regressions = {test.nodeid: test.error for test in result.regressions()}
    assert not regressions, f"see {path}"
    assert result.probe is not None and result.probe.get("error") is None, result.probe
    assert result.probe.get("cooperative"), result.probe
