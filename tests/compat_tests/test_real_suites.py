"""The real suites, end to end: minutes each, and they build environments from
the package index.  Marked ``compat``: skipped unless run with ``-m compat``
(``tox -e compat``).  This is the issue's definition of done, as a test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from greenpatch.compat_tests.harness import HarnessOptions, run_suite
from greenpatch.compat_tests.manifest import builtin_suites, resolve_suite

pytestmark = [pytest.mark.compat, pytest.mark.timeout(1800)]


@pytest.mark.parametrize("suite", sorted(builtin_suites()))
def test_suite_has_no_regression_and_its_probe_cooperates(suite: str, tmp_path: Path) -> None:
    """Each built-in suite at its newest release (GREENPATCH_COMPAT_VERSION: another)."""
    out = Path(os.environ.get("GREENPATCH_COMPAT_OUT", tmp_path))
    manifest = resolve_suite(suite)
    version = os.environ.get("GREENPATCH_COMPAT_VERSION")
    result, path = run_suite(manifest, HarnessOptions(out_dir=out, version=version))
    assert result.not_run_reason is None, result.not_run_reason
    assert not result.incomplete, result.notes
    regressions = {test.nodeid: test.error for test in result.regressions()}
    assert not regressions, f"see {path}"
    plain, patched = result.modes["plain"], result.modes["patched"]
    # Hangs are failures (and regressions); the speed ratio leaves their timeouts out.
    assert patched.active_duration <= 1.3 * plain.active_duration, (plain, patched)
    assert result.probe is not None and not result.probe.get("error"), result.probe
    if manifest.probe is not None and manifest.probe.blocks:
        # A C driver known to block (the C drivers issue makes it cooperative):
        # the result says why, and must notice the day it cooperates.
        assert any("as the manifest expects" in note for note in result.notes), result.notes
    else:
        assert result.probe.get("cooperative"), result.probe
