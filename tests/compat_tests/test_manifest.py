"""Manifests: the built-in ones load, and a bad one is one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenpatch.compat_tests.manifest import (
    ManifestError,
    builtin_suites,
    load_manifest,
    resolve_suite,
)

from .conftest import TINYLIB


def _load(tmp_path: Path, text: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text)
    load_manifest(path)


def test_builtin_suites_are_requests_and_redis() -> None:
    assert set(builtin_suites()) >= {"requests", "redis"}


@pytest.mark.parametrize("name", sorted(builtin_suites()))
def test_builtin_manifests_test_the_newest_release_and_say_what_they_know(name: str) -> None:
    manifest = resolve_suite(name)
    assert manifest.source_kind == "sdist"
    assert manifest.version == "latest"  # no frozen pin
    assert manifest.versions  # the range the manifest was checked against
    assert manifest.matrix[0] == "latest"
    assert all(block.note for block in manifest.when)
    every = [*manifest.deselect, *(d for block in manifest.when for d in block.deselect)]
    assert all(len(entry.reason) > 10 for entry in every)


def test_redis_manifest_passes_the_server_url_as_an_option() -> None:
    manifest = resolve_suite("redis")
    assert [(s.name, s.option) for s in manifest.services] == [("redis", "--redis-url")]
    assert {d.marker for d in manifest.deselect} >= {"onlycluster", "redismod", "ssl", "replica"}
    assert all(d.reason for d in manifest.deselect)


def test_path_source_is_relative_to_the_manifest() -> None:
    manifest = load_manifest(TINYLIB / "suite.toml")
    assert manifest.source_path == TINYLIB
    assert manifest.environment == "current"
    assert manifest.expected_reason("check_tiny.py::test_expected_incompatibility")


def test_missing_required_key_names_file_and_key(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        _load(tmp_path, "[suite]\nname = 'x'\n")
    assert caught.value.key == "suite.distribution"
    assert str(tmp_path / "m.toml") in str(caught.value)
    assert "expected a string" in str(caught.value)


def test_wrong_type_says_what_was_expected(tmp_path: Path) -> None:
    text = "[suite]\ndistribution = 'x'\nversion = '1'\n[pytest]\nper_test_timeout = 'soon'\n"
    with pytest.raises(ManifestError, match=r"\[pytest.per_test_timeout\]: expected a number"):
        _load(tmp_path, text)


def test_unknown_key_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    text = "[suite]\ndistribution = 'x'\nversion = '1'\nflavour = 'mint'\n"
    with pytest.raises(ManifestError, match=r"\[suite.flavour\]: unknown key; expected one of"):
        _load(tmp_path, text)


def test_unknown_service_is_refused(tmp_path: Path) -> None:
    text = "[suite]\ndistribution = 'x'\nversion = '1'\n[services.kafka]\nenv = 'K'\n"
    with pytest.raises(ManifestError, match=r"\[services.kafka\]: unknown service"):
        _load(tmp_path, text)


def test_deselect_needs_an_id_or_a_marker(tmp_path: Path) -> None:
    text = "[suite]\ndistribution = 'x'\nversion = '1'\n[[deselect]]\nreason = 'why'\n"
    with pytest.raises(ManifestError, match=r"\[deselect\[0\].id\]"):
        _load(tmp_path, text)


def test_deselect_needs_a_reason(tmp_path: Path) -> None:
    text = "[suite]\ndistribution = 'x'\nversion = '1'\n[[deselect]]\nid = 'tests/a.py'\n"
    with pytest.raises(ManifestError, match=r"\[deselect\[0\].reason\]: missing"):
        _load(tmp_path, text)


def test_probe_callable_must_name_module_and_function(tmp_path: Path) -> None:
    text = "[suite]\ndistribution = 'x'\nversion = '1'\n[probe]\ncallable = 'nocolon'\n"
    with pytest.raises(ManifestError, match="module:function"):
        _load(tmp_path, text)


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"m\.toml: not valid TOML"):
        _load(tmp_path, "[suite\n")


def test_unknown_suite_name_lists_the_builtins() -> None:
    with pytest.raises(ManifestError, match=r"built-in: .*requests"):
        resolve_suite("no-such-suite")
