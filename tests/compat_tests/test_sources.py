"""Test sources and environments that need no network."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from greenpatch.compat_tests import sources
from greenpatch.compat_tests.environment import (
    EnvironmentError_,
    find_interpreter,
    prepare_environment,
)
from greenpatch.compat_tests.manifest import ManifestError, load_manifest
from greenpatch.compat_tests.sources import Source, prepare_source, requirement

from .conftest import TINYLIB, write_manifest


@pytest.mark.parametrize(
    ("spec", "wanted"),
    [("2.32.3", "requests==2.32.3"), ("==2.32.3", "requests==2.32.3"), (">=2", "requests>=2")],
)
def test_requirement_from_a_version_spec(spec: str, wanted: str) -> None:
    assert requirement("requests", spec) == wanted


def test_path_source_is_used_in_place() -> None:
    manifest = load_manifest(TINYLIB / "suite.toml")
    source = prepare_source(manifest, None, Path("/nonexistent-cache"))
    assert source.root == TINYLIB
    assert source.version == "0.1"


def test_missing_path_source_is_a_clear_error(tmp_path: Path, tinylib_manifest_text: str) -> None:
    text = tinylib_manifest_text.replace('path = "."', 'path = "gone"')
    (tmp_path / "m.toml").write_text(text)
    # Found when the manifest is read (a usage error, exit 2), before any work.
    with pytest.raises(ManifestError, match=r"\[source.path\]: .*gone does not exist"):
        load_manifest(tmp_path / "m.toml")


def test_cached_sdist_is_reused_without_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive_dir = tmp_path / "a" / "demo-1.0" / "tests"
    archive_dir.mkdir(parents=True)
    (archive_dir / "test_x.py").write_text("def test_x(): pass\n")
    archive = tmp_path / "demo-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(tmp_path / "a" / "demo-1.0", arcname="demo-1.0")
    target = tmp_path / "cache" / "sources" / "demo-1.0"
    sources._unpack(archive, target)
    (target / sources._STAMP).write_text("demo-1.0.tar.gz\n")
    manifest_path = tmp_path / "demo.toml"
    manifest_path.write_text("[suite]\ndistribution = 'demo'\nversion = '==1.0'\n")

    def no_index(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(sources.subprocess, "run", no_index)
    source = prepare_source(load_manifest(manifest_path), None, tmp_path / "cache")
    assert source.root == target / "demo-1.0"
    assert (source.root / "tests" / "test_x.py").exists()


def test_version_comes_from_the_sdist_file_name() -> None:
    assert sources._version_from_archive("redis-5.2.1.tar.gz") == "5.2.1"
    assert sources._version_from_archive("zope_interface-7.0.zip") == "7.0"


def test_python_path_means_an_existing_environment() -> None:
    assert find_interpreter(sys.executable) == (sys.executable, True)


def test_python_version_that_is_not_installed_is_a_clear_error() -> None:
    with pytest.raises(EnvironmentError_, match=r"no working python9\.99 on PATH"):
        find_interpreter("9.99")


def test_current_environment_lists_its_packages(tmp_path: Path, tinylib_manifest_text: str) -> None:
    manifest = load_manifest(write_manifest(tmp_path, tinylib_manifest_text))
    source = Source(root=TINYLIB, version="0.1", origin="test")
    env = prepare_environment(manifest, source, None, tmp_path)
    assert env.python == sys.executable
    assert env.location == "existing"
    assert "pytest" in env.packages


def test_python_version_finds_a_working_interpreter_of_that_version() -> None:
    version = "{}.{}".format(*sys.version_info[:2])
    python, existing = find_interpreter(version)
    assert not existing  # X.Y means: build an environment on it
    done = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == str(tuple(sys.version_info[:2]))
