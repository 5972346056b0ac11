"""Which release a run tests: version items, the manifest's range and [[when]] blocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenpatch.compat_tests.manifest import ManifestError, load_manifest
from greenpatch.compat_tests.sources import SourceError, cached_versions, obtain_release
from greenpatch.compat_tests.versions import (
    VersionError,
    choose,
    in_range,
    index_versions,
    is_exact,
    parse_version_items,
)

RELEASES = ["8.2.0", "8.1.0", "8.0.0b1", "7.4.1", "6.4.0", "5.3.1", "5.2.1", "not-a-version"]


def test_a_comma_list_is_several_items_but_a_specifier_keeps_its_comma() -> None:
    assert parse_version_items(["5.2.1,6.4.0, latest"]) == ["5.2.1", "6.4.0", "latest"]
    assert parse_version_items(["5.*", "==8.2.0", "5.*"]) == ["5.*", "==8.2.0"]
    assert parse_version_items([">=6,<7"]) == [">=6,<7"]


@pytest.mark.parametrize("bad", ["soon", "5.2.1,", ">>6", ""])
def test_a_version_item_that_names_no_release_is_refused(bad: str) -> None:
    with pytest.raises(VersionError, match="version"):
        parse_version_items([bad])


def test_items_choose_the_newest_admitted_release() -> None:
    assert choose("latest", RELEASES)[0] == "8.2.0"  # not the pre-release, not nonsense
    assert "8.0.0b1" not in choose("latest", RELEASES)
    assert choose("5.*", RELEASES) == ["5.3.1", "5.2.1"]
    assert choose(">=6,<8", RELEASES) == ["7.4.1", "6.4.0"]
    assert choose("==5.2.1", RELEASES) == ["5.2.1"]
    assert choose("9.*", RELEASES) == []
    assert is_exact("8.0.0b1") == "8.0.0b1" and is_exact("8.*") is None


def test_the_known_range_says_whether_a_release_is_in_it() -> None:
    assert in_range("8.2.0", ">=5,<9") is True
    assert in_range("9.0.0", ">=5,<9") is False
    assert in_range("8.2.0", None) is None
    assert in_range("main", ">=5") is None


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return path


WHEN = """
[suite]
distribution = "x"
versions = ">=5,<9"
matrix = ["latest", "5.*"]
[environment]
requirements = ["pytest"]
[pytest]
args = ["-q"]
[services.redis]
option = "--redis-url"
[[deselect]]
marker = "cluster"
reason = "needs a cluster"

[[when]]
versions = ">=8"
note = "8.0 tests import pybreaker"
requirements = ["pybreaker"]
pytest_args = ["-p", "no:cov"]
env = { X = "1" }
[[when.deselect]]
id = "tests/test_scenario"
reason = "needs a proxy at 127.0.0.1:15379"
[[when.expected]]
id = "tests/a.py::t"
reason = "root cause"
[when.services.redis]
env = "REDIS_URL"

[[when]]
versions = "<6"
note = "5.x pins pytest-asyncio 0.23"
requirements = ["pytest-asyncio==0.23.8"]
"""


def test_when_blocks_add_to_the_manifest_for_the_releases_they_name(tmp_path: Path) -> None:
    manifest = load_manifest(_write(tmp_path, WHEN))
    assert manifest.version == "latest"
    assert manifest.versions == ">=5,<9" and manifest.matrix == ("latest", "5.*")
    eight = manifest.for_version("8.2.0")
    assert eight.requirements == ("pytest", "pybreaker")
    assert eight.pytest_args == ("-q", "-p", "no:cov")
    assert [d.id or d.marker for d in eight.deselect] == ["cluster", "tests/test_scenario"]
    assert eight.expected_reason("tests/a.py::t") == "root cause"
    assert eight.env == {"X": "1"}
    (redis,) = eight.services
    assert redis.env == "REDIS_URL" and redis.option is None  # the block's replaces
    assert eight.applied == (">=8: 8.0 tests import pybreaker",)
    five = manifest.for_version("5.2.1")
    assert five.requirements == ("pytest", "pytest-asyncio==0.23.8")
    assert five.applied == ("<6: 5.x pins pytest-asyncio 0.23",)
    assert manifest.for_version("7.4.1") is manifest  # no block: the manifest itself
    assert manifest.for_version("main") is manifest


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[suite]\ndistribution = 'x'\nversions = 'five'\n", r"\[suite.versions\]: expected a"),
        ("[suite]\ndistribution = 'x'\nmatrix = ['soon']\n", r"\[suite.matrix\]: version 'soon'"),
        ("[suite]\ndistribution = 'x'\nmatrix = []\n", r"\[suite.matrix\]: expected at least"),
        ("[suite]\ndistribution = 'x'\n[[when]]\nnote = 'n'\n", r"\[when\[0\].versions\]: missing"),
        (
            "[suite]\ndistribution = 'x'\n[[when]]\nversions = '>1'\n",
            r"\[when\[0\].note\]: missing",
        ),
        (
            "[suite]\ndistribution = 'x'\n[[when]]\nversions = '>1'\nnote = 'n'\nflavour = 1\n",
            r"\[when\[0\].flavour\]: unknown key",
        ),
        (
            "[suite]\ndistribution = 'x'\n[[when]]\nversions = '>1'\nnote = 'n'\n"
            "[[when.deselect]]\nreason = 'why'\n",
            r"\[when\[0\].deselect\[0\].id\]: a deselect entry needs",
        ),
    ],
)
def test_a_bad_version_table_names_its_key(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(ManifestError, match=error):
        load_manifest(_write(tmp_path, text))


def _cache_with(tmp_path: Path, *versions: str) -> Path:
    cache = tmp_path / "cache"
    for version in versions:
        root = cache / "sources" / f"x-{version}"
        (root / f"x-{version}" / "tests").mkdir(parents=True)
        (root / ".greenpatch-source-complete").write_text("x.tar.gz\n")
    (cache / "sources" / "x-9.9.9").mkdir()  # half-unpacked: no stamp
    return cache


def test_offline_the_newest_cached_release_stands_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = _cache_with(tmp_path, "1.0.0", "1.2.0", "2.0.0")
    assert sorted(cached_versions("x", cache)) == ["1.0.0", "1.2.0", "2.0.0"]

    def offline(distribution: str, python: str | None = None) -> list[str]:
        raise VersionError("could not list the releases of x on the package index (pip said: no)")

    monkeypatch.setattr("greenpatch.compat_tests.sources.index_versions", offline)
    manifest = load_manifest(_write(tmp_path, "[suite]\ndistribution = 'x'\nversions = '<2'\n"))
    source, notes = obtain_release(manifest, "latest", None, cache)
    assert source.version == "2.0.0"
    assert notes[0].startswith("x 2.0.0: the newest release in the cache")
    assert any("pip said: no" in note for note in notes)
    assert any("outside the releases this manifest is known to work for (<2)" in n for n in notes)
    source, notes = obtain_release(manifest, "1.*", None, cache)
    assert source.version == "1.2.0"
    assert not any("outside" in note for note in notes)
    with pytest.raises(SourceError, match=r"no release of x in the cache .* matches '3.\*'"):
        obtain_release(manifest, "3.*", None, cache)


def test_the_package_index_lists_releases_with_their_python_requirement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip itself asks the index: here a file index on disk, the machine's
    configuration switched off (its index, extra indexes and find-links)."""
    page = tmp_path / "simple" / "x"
    page.mkdir(parents=True)
    links = [("x-1.0.0.tar.gz", ""), ("x-2.0.0.tar.gz", "&gt;=3.12"), ("x-1.5.0.tar.gz", "")]
    page.joinpath("index.html").write_text(
        "<html><body>"
        + "".join(f'<a href="{name}" data-requires-python="{rp}">{name}</a>' for name, rp in links)
        + "</body></html>"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "simple").as_uri())
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    assert index_versions("x", "3.13") == ["2.0.0", "1.5.0", "1.0.0"]
    assert index_versions("x", "3.9") == ["1.5.0", "1.0.0"]  # 2.0.0 needs Python 3.12
    with pytest.raises(VersionError, match=r"could not list the releases of y .*pip said"):
        index_versions("y", "3.9")


@pytest.mark.compat
def test_an_old_sdist_whose_setup_imports_pkg_resources_is_still_fetched(tmp_path: Path) -> None:
    """websocket-client 0.59.0's setup.py imports pkg_resources (gone from
    setuptools 82): pip can read its metadata only with an older setuptools."""
    manifest = load_manifest(_write(tmp_path, "[suite]\ndistribution = 'websocket-client'\n"))
    source, _ = obtain_release(manifest, "0.59.0", None, tmp_path / "cache")
    assert source.version == "0.59.0"
    assert (source.root / "websocket" / "tests").is_dir()
