"""The built-in urllib3 suite: its manifest loads, says per release line what it
needs, and names a probe that imports and cooperates (seconds, loopback only);
the real runs, at the newest release and at 1.26, are marked ``compat``
(minutes: they build environments from the package index)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from greenpatch.compat_tests.harness import HarnessOptions, run_suite
from greenpatch.compat_tests.library_probes import urllib3 as urllib3_probe
from greenpatch.compat_tests.manifest import builtin_suites, resolve_suite
from greenpatch.compat_tests.probes import (
    ProbeContext,
    ProbeSetupError,
    load_callable,
    run_probe,
)

PROBE = "greenpatch.compat_tests.library_probes.urllib3:probe"
TARPIT = "240.0.0.0"


def test_the_manifest_is_built_in_and_names_an_importable_probe() -> None:
    assert "urllib3" in builtin_suites()
    manifest = resolve_suite("urllib3")
    assert manifest.distribution == "urllib3"
    assert manifest.tests == ("test",)
    assert manifest.services == ()  # the test servers run in the tests' own threads
    assert manifest.matrix == ("latest", "1.*")
    assert manifest.probe is not None
    assert manifest.probe.callable == PROBE
    assert manifest.probe.blocks is None  # urllib3 is pure Python over the socket module
    assert load_callable(manifest.probe.callable) is urllib3_probe.probe


def test_each_release_line_gets_its_own_test_servers() -> None:
    manifest = resolve_suite("urllib3")
    newest = manifest.for_version("2.8.0")
    assert any(req.startswith("hypercorn==") for req in newest.requirements)
    assert not any(req.startswith("tornado==") for req in newest.requirements)
    old = manifest.for_version("1.26.20")
    assert any(req.startswith("tornado==") for req in old.requirements)
    assert not any(req.startswith("hypercorn==") for req in old.requirements)
    assert old.pytest_args == ("--no-success-flaky-report",)
    # One pytest each: the lines pin different releases of it.
    for release in (newest, old):
        assert sum(req.startswith("pytest==") for req in release.requirements) == 1


def test_every_deselection_names_what_it_needs() -> None:
    manifest = resolve_suite("urllib3")
    for version in ("2.8.0", "1.26.20"):
        for entry in manifest.for_version(version).deselect:
            assert entry.reason.startswith("needs "), entry
            if entry.id is not None and "timeout" in entry.id:
                assert TARPIT in entry.reason, entry
    newest_ids = {entry.id for entry in manifest.for_version("2.8.0").deselect}
    assert "test/contrib/emscripten" in newest_ids
    old_ids = {entry.id for entry in manifest.for_version("1.26.20").deselect}
    assert "test/appengine" in old_ids and "test/contrib/emscripten" not in old_ids
    # requires_network is a marker from 2.0 on, a plain decorator before.
    assert any(
        entry.marker == "requires_network" for entry in manifest.for_version("2.8.0").deselect
    )
    assert "test/with_dummyserver/test_https.py::TestHTTPS::test_https_timeout" in old_ids


def test_the_probe_without_the_slow_server_says_what_it_needs() -> None:
    with pytest.raises(ProbeSetupError, match="--http"):
        urllib3_probe.probe(ProbeContext(delay=0.3))


def test_the_probe_cooperates() -> None:
    pytest.importorskip("urllib3")
    result = run_probe(sys.executable, PROBE, concurrency=10, delay=0.3)
    assert result["error"] is None
    assert result["cooperative"] is True
    assert min(result["latencies"]) >= 0.29  # each call really waited for the server


# -- the real suite --------------------------------------------------------------------
@pytest.mark.compat
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("version", [None, "1.*"])
def test_the_suite_has_no_regression_and_its_probe_cooperates(
    version: str | None, tmp_path: Path
) -> None:
    out = Path(os.environ.get("GREENPATCH_COMPAT_OUT", tmp_path))
    result, path = run_suite(resolve_suite("urllib3"), HarnessOptions(out_dir=out, version=version))
    assert result.not_run_reason is None, result.not_run_reason
    assert not result.incomplete, result.notes
    assert not {test.nodeid: test.error for test in result.regressions()}, f"see {path}"
    assert result.modes["patched"].counts.get("passed", 0) >= 1500, result.modes["patched"]
    assert result.probe is not None
    assert result.probe.get("cooperative"), result.probe
