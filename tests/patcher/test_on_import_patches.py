"""Patches of optional libraries: armed until the library is imported, applied
before the importing statement returns, never importing it themselves."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenpatch.patcher import PatchError, PatchSpec, Registry, _import_hook


@pytest.fixture
def library(tmp_path: Path) -> Iterator[str]:
    """An importable module ``gp_optional_lib`` (on disk, not yet imported) and a
    green twin ``gp_optional_green`` (in memory)."""
    (tmp_path / "gp_optional_lib.py").write_text(
        "IMPORTS = []\nIMPORTS.append(1)\n\ndef work():\n    return 'blocking'\n"
    )
    green = types.ModuleType("gp_optional_green")
    green.__target__ = "gp_optional_lib"  # type: ignore[attr-defined]
    green.__implements__ = ["work"]  # type: ignore[attr-defined]
    green.work = lambda: "cooperative"  # type: ignore[attr-defined]
    sys.modules["gp_optional_green"] = green
    sys.path.insert(0, str(tmp_path))
    try:
        yield "gp_optional_lib"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("gp_optional_lib", None)
        sys.modules.pop("gp_optional_green", None)


def _spec(**extra: object) -> PatchSpec:
    return PatchSpec(
        name="optional",
        target="gp_optional_lib",
        green="gp_optional_green",
        flag="optional",
        on_import=True,
        **extra,  # type: ignore[arg-type]
    )


def test_patching_does_not_import_the_library_and_arms_the_patch(library: str) -> None:
    registry = Registry()
    registry.register(_spec())
    try:
        assert registry.patch("optional") is True
        assert library not in sys.modules
        assert registry.is_patched("optional") and registry.is_armed("optional")
        assert registry.patched() == ["optional"]
        assert registry.patch("optional") is False
    finally:
        registry.unpatch("optional")


def test_the_import_statement_returns_the_patched_module(library: str) -> None:
    registry = Registry()
    registry.register(_spec())
    registry.patch("optional")
    try:
        import gp_optional_lib  # type: ignore[import-not-found]

        assert gp_optional_lib.work() == "cooperative"
        assert not registry.is_armed("optional") and registry.is_patched("optional")
        assert registry.original("gp_optional_lib", "work")() == "blocking"
    finally:
        registry.unpatch("optional")
    assert gp_optional_lib.work() == "blocking"


def test_a_library_already_imported_is_patched_at_once(library: str) -> None:
    import gp_optional_lib

    registry = Registry()
    registry.register(_spec())
    registry.patch("optional")
    try:
        assert not registry.is_armed("optional")
        assert gp_optional_lib.work() == "cooperative"
    finally:
        registry.unpatch("optional")


def test_a_reimported_library_is_patched_again(library: str) -> None:
    registry = Registry()
    registry.register(_spec())
    registry.patch("optional")
    try:
        import gp_optional_lib

        del sys.modules["gp_optional_lib"]
        import gp_optional_lib as again

        assert again is not gp_optional_lib
        assert again.work() == "cooperative"
    finally:
        registry.unpatch("optional")


def test_unpatching_an_armed_patch_disarms_it(library: str) -> None:
    registry = Registry()
    registry.register(_spec())
    registry.patch("optional")
    assert registry.unpatch("optional") is True
    import gp_optional_lib

    assert gp_optional_lib.work() == "blocking"
    assert not registry.is_patched("optional")


def test_a_patch_failing_at_import_fails_that_import_with_its_name(library: str) -> None:
    def broken(target: types.ModuleType, registry: Registry) -> None:
        raise RuntimeError("no hook in this build")

    registry = Registry()
    registry.register(_spec(after=broken))
    registry.patch("optional")
    try:
        with pytest.raises(PatchError, match=r"patch .optional. failed.*no hook in this build"):
            import gp_optional_lib  # noqa: F401
        assert "gp_optional_lib" not in sys.modules
        assert not registry.is_patched("optional")
    finally:
        registry.unpatch("optional")
        _import_hook.cancel("gp_optional_lib", registry._on_import_callback("optional"))


def test_a_library_that_is_not_installed_only_arms() -> None:
    registry = Registry()
    registry.register(
        PatchSpec(
            name="absent",
            target="gp_no_such_library_anywhere",
            green="gp_no_such_green_either",
            flag="absent",
            on_import=True,
        )
    )
    assert registry.patch("absent") is True
    try:
        with pytest.raises(ImportError):
            import gp_no_such_library_anywhere  # type: ignore[import-not-found]  # noqa: F401
    finally:
        registry.unpatch("absent")


def test_after_import_runs_every_callback_once_per_import(library: str) -> None:
    seen: list[str] = []

    def first(module: types.ModuleType) -> None:
        seen.append("first:" + module.__name__)

    def second(module: types.ModuleType) -> None:
        seen.append("second")

    _import_hook.after_import(library, first)
    _import_hook.after_import(library, second)
    _import_hook.after_import(library, first)  # the same callback is kept once
    try:
        import gp_optional_lib

        assert seen == ["first:gp_optional_lib", "second"]
        assert gp_optional_lib.IMPORTS == [1]  # the module's own code ran once
    finally:
        assert _import_hook.cancel(library, first) and _import_hook.cancel(library, second)
    assert not _import_hook.cancel(library, first)
