"""The probe step of a suite: when it runs, and what the result says beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenpatch.compat_tests.harness import HarnessOptions, run_suite
from greenpatch.compat_tests.manifest import load_manifest

from .conftest import write_manifest

PROBES = '''
from pathlib import Path

import greenpatch

blocking_sleep = greenpatch.original("time", "sleep")


def blocking(context):
    """A C driver's call, as the hub sees it: no yield."""
    Path(__file__).with_name("probe-ran").write_text("yes")
    blocking_sleep(context.delay)


def cooperative(context):
    import time

    time.sleep(context.delay)
'''


def _suite(tmp_path: Path, text: str, probe: str, extra: str = "") -> Path:
    (tmp_path / "probes.py").write_text(PROBES)
    text = text.replace('tests = ["check_tiny.py"]', 'tests = ["check_tiny.py::test_passes"]')
    text += f'\n[probe]\ncallable = "probes.py:{probe}"\nconcurrency = 4\ndelay = 0.2\n{extra}'
    return write_manifest(tmp_path, text)


def test_a_suite_that_ran_no_test_gets_no_probe(tmp_path: Path, tinylib_manifest_text: str) -> None:
    text = tinylib_manifest_text.replace('args = ["-q"]', 'args = ["--no-such-option"]')
    manifest = load_manifest(_suite(tmp_path, text, "blocking"))
    result, _ = run_suite(manifest, HarnessOptions(out_dir=tmp_path / "out"))
    assert "ran no test" in (result.not_run_reason or "")
    assert result.probe is None
    assert result.cooperation == "not_measured"
    assert result.cooperation_reason == "the suite ran no test: the probe was not run"
    assert not (tmp_path / "probe-ran").exists()


@pytest.mark.parametrize(
    ("probe", "note"),
    [
        (
            "blocking",
            "the probe blocks the loop, as the manifest expects: libfake does its own I/O",
        ),
        ("cooperative", "the probe cooperated although the manifest expects it to block"),
    ],
)
def test_a_probe_known_to_block_says_why_and_says_when_it_no_longer_does(
    tmp_path: Path, tinylib_manifest_text: str, probe: str, note: str
) -> None:
    path = _suite(tmp_path, tinylib_manifest_text, probe, 'blocks = "libfake does its own I/O"\n')
    result, _ = run_suite(load_manifest(path), HarnessOptions(out_dir=tmp_path / "out"))
    assert result.probe is not None and result.probe.get("error") is None
    assert result.probe["cooperative"] is (probe == "cooperative")
    assert any(line.startswith(note) for line in result.notes), result.notes
