"""Issue 13: a user's mistakes are one line, found before any work (exit 2 in the CLI),
and the harness itself says when cooperation was not measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenpatch.compat_tests.harness import (
    HarnessOptions,
    PreconditionError,
    check_preconditions,
    run_suite,
)
from greenpatch.compat_tests.manifest import ManifestError, load_manifest
from greenpatch.compat_tests.probes import run_probe

from .conftest import TINYLIB


def _write(directory: Path, text: str) -> Path:
    path = directory / "suite.toml"
    path.write_text(text)
    return path


def test_an_unwritable_cache_dir_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    options = HarnessOptions(out_dir=tmp_path, cache_dir=blocker / "cache")
    with pytest.raises(PreconditionError, match=r"^--cache-dir .*: not writable \(") as caught:
        check_preconditions([], options)
    assert "\n" not in str(caught.value)


def test_an_unwritable_cache_from_the_environment_is_named_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("GREENPATCH_CACHE_DIR", str(tmp_path / "file" / "cache"))
    with pytest.raises(PreconditionError, match=r"^GREENPATCH_CACHE_DIR=.*: not writable"):
        check_preconditions([], HarnessOptions(out_dir=tmp_path))


def test_a_missing_source_path_is_a_manifest_error(tmp_path: Path) -> None:
    text = "[suite]\ndistribution = 'x'\n[source]\nkind = 'path'\npath = 'nowhere'\n"
    with pytest.raises(ManifestError, match=r"\[source.path\]: .*nowhere does not exist"):
        load_manifest(_write(tmp_path, text))


def test_a_local_library_needs_no_kind_and_no_version(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    manifest = load_manifest(
        _write(tmp_path, "[suite]\ndistribution = 'x'\n[source]\npath = 'lib'\n")
    )
    assert manifest.source_kind == "path"
    assert manifest.source_path == tmp_path / "lib"


def test_an_sdist_without_version_tests_the_newest_release(tmp_path: Path) -> None:
    manifest = load_manifest(_write(tmp_path, "[suite]\ndistribution = 'x'\n"))
    assert manifest.source_kind == "sdist"
    assert manifest.version == "latest"
    with pytest.raises(ManifestError, match=r"\[suite.version\]: version 'soon': expected"):
        load_manifest(_write(tmp_path, "[suite]\ndistribution = 'x'\nversion = 'soon'\n"))


def test_a_probe_file_next_to_the_manifest_is_resolved_and_must_exist(tmp_path: Path) -> None:
    base = "[suite]\ndistribution = 'x'\nversion = '1'\n[probe]\ncallable = 'probe.py:fetch'\n"
    with pytest.raises(ManifestError, match=r"\[probe.callable\]: .*probe.py does not exist"):
        load_manifest(_write(tmp_path, base))
    (tmp_path / "probe.py").write_text("def fetch(url):\n    pass\n")
    probe = load_manifest(_write(tmp_path, base)).probe
    assert probe is not None and probe.callable == f"{tmp_path / 'probe.py'}:fetch"


def test_the_generic_probe_calls_a_plain_function_with_configured_arguments(
    tmp_path: Path,
) -> None:
    # No probe written for greenpatch: any function, its arguments from the manifest.
    (tmp_path / "client.py").write_text(
        "import urllib.request\n\n"
        "def fetch(url, timeout):\n"
        "    with urllib.request.urlopen(url, timeout=timeout) as response:\n"
        "        response.read()\n"
    )
    result = run_probe(
        python=__import__("sys").executable,
        callable=f"{tmp_path / 'client.py'}:fetch",
        concurrency=5,
        delay=0.2,
        call={"args": ["{http_url}"], "kwargs": {"timeout": 30}},
    )
    assert result["error"] is None
    assert result["cooperative"] is True


def test_a_run_without_probe_says_cooperation_not_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINYLIB_STATE", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    options = HarnessOptions(out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", only="plain")
    result, _ = run_suite(load_manifest(TINYLIB / "suite.toml"), options)
    assert result.probe is None
    assert result.cooperation == "not_measured"
    assert result.cooperation_reason
