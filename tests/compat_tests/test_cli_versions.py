"""``compat run --version a,b`` and ``--all``: one result per suite and release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from greenpatch.compat_tests import cli

from .conftest import write_manifest

SUITE = """
[suite]
name = "fakelib"
distribution = "fakelib"
versions = ">=1,<2"

[environment]
kind = "current"
install_library = false

[source]
tests = ["check_fake.py"]

[pytest]
args = ["-q", "-p", "no:cacheprovider"]
"""

CHECK = """
from pathlib import Path


def test_the_tree_is_the_release_asked_for():
    assert Path(__file__).parent.name.startswith("fakelib-")
"""


def _cache(tmp_path: Path) -> Path:
    """Complete sources of three releases, as earlier runs left them."""
    cache = tmp_path / "cache"
    for version in ("1.0.0", "1.1.0", "2.0.0"):
        entry = cache / "sources" / f"fakelib-{version}"
        (entry / f"fakelib-{version}").mkdir(parents=True)
        (entry / f"fakelib-{version}" / "check_fake.py").write_text(CHECK)
        (entry / ".greenpatch-source-complete").write_text(f"fakelib-{version}.tar.gz\n")
    return cache


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An index that answers nothing: the releases come from the cache."""
    empty = tmp_path / "index"
    empty.mkdir()
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", empty.as_uri())
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")


@pytest.mark.usefixtures("offline")
def test_each_version_item_is_one_run_and_one_result(tmp_path: Path) -> None:
    manifest = tmp_path / "fakelib.toml"
    manifest.write_text(SUITE)
    out = tmp_path / "out"
    argv = ["compat", "run", str(manifest), "--version", "1.*,latest", "--only", "plain"]
    argv += ["--out", str(out), "--cache-dir", str(_cache(tmp_path))]
    assert cli.main(argv) == 0
    results = {
        path.name: json.loads(path.read_text()) for path in sorted(out.glob("fakelib-*.json"))
    }
    # 1.* is the newest 1.x (1.1.0), latest the newest of all (2.0.0); 1.0.0 is not tested.
    assert sorted(result["version"] for result in results.values()) == ["1.1.0", "2.0.0"]
    assert all(name.startswith(("fakelib-1.1.0-py", "fakelib-2.0.0-py")) for name in results)
    for result in results.values():
        assert result["verdicts"] == {"passed": 1}
        assert any("in the cache (the index could not be asked)" in n for n in result["notes"])
    newest = next(r for r in results.values() if r["version"] == "2.0.0")
    assert any(
        "outside the releases this manifest is known to work for" in n for n in newest["notes"]
    )
    assert "--version latest" in newest["reproduce"]
    older = next(r for r in results.values() if r["version"] == "1.1.0")
    assert not any("outside" in n for n in older["notes"])
    assert "--version '1.*'" in older["reproduce"]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--all", "requests"], "give suites by name or --all, not both"),
        ([], "name the suites to run"),
        (["requests", "--version", "soon"], "version 'soon': expected"),
    ],
)
def test_bad_suite_or_version_selection_is_a_usage_error(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["compat", "run", *argv]) == 2
    assert error in capsys.readouterr().err


def test_a_local_tree_cannot_be_several_releases(
    tmp_path: Path, tinylib_manifest_text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = write_manifest(tmp_path, tinylib_manifest_text)
    assert cli.main(["compat", "run", str(manifest), "--version", "1.0,2.0"]) == 2
    assert "tinylib: --version names 2 releases, but its tests come from a local tree" in (
        capsys.readouterr().err
    )
