"""The registry: specs, originals, idempotence, unknown names, plugins, hooks."""

from __future__ import annotations

import sys
import types

import pytest

from greenpatch.patcher import PatchError, PatchSpec, Registry, UnknownPatchError


@pytest.fixture
def fake_modules(monkeypatch):
    target = types.ModuleType("gp_fake_target")
    target.blocking = lambda: "original"
    target.Keep = object()
    target.doomed = "bye"
    green = types.ModuleType("gp_fake_green")
    green.__target__ = "gp_fake_target"
    green.__implements__ = ["blocking", "added"]
    green.blocking = lambda: "green"
    green.added = lambda: "new"
    monkeypatch.setitem(sys.modules, "gp_fake_target", target)
    monkeypatch.setitem(sys.modules, "gp_fake_green", green)
    return target, green


def test_patch_swaps_declared_names_and_records_originals(fake_modules):
    target, _ = fake_modules
    original = target.blocking
    registry = Registry()
    registry.register(PatchSpec("fake", "gp_fake_target", "gp_fake_green", flag="fake"))
    assert registry.patch("fake") is True
    assert target.blocking() == "green" and target.added() == "new"
    assert registry.original("gp_fake_target", "blocking") is original
    with pytest.raises(AttributeError, match="had no attribute 'added'"):
        registry.original("gp_fake_target", "added")
    assert registry.is_patched("fake") and registry.patched() == ["fake"]


def test_patching_twice_is_a_no_op(fake_modules):
    target, _ = fake_modules
    original = target.blocking
    registry = Registry()
    registry.register(PatchSpec("fake", "gp_fake_target", "gp_fake_green", flag="fake"))
    registry.patch("fake")
    assert registry.patch("fake") is False
    assert registry.original("gp_fake_target", "blocking") is original


def test_unpatch_restores_and_deletes_added_names(fake_modules):
    target, _ = fake_modules
    original = target.blocking
    registry = Registry()
    registry.register(PatchSpec("fake", "gp_fake_target", "gp_fake_green", flag="fake"))
    registry.patch("fake")
    registry.unpatch("fake")
    assert target.blocking is original and not hasattr(target, "added")
    assert not registry.is_patched("fake")


def test_spec_names_narrow_what_is_swapped_and_remove_deletes(fake_modules):
    target, _ = fake_modules
    registry = Registry()
    registry.register(
        PatchSpec(
            "narrow",
            "gp_fake_target",
            "gp_fake_green",
            flag="f",
            names=("added",),
            remove=("doomed",),
        )
    )
    registry.patch("narrow")
    assert target.blocking() == "original"
    assert target.added() == "new"
    assert not hasattr(target, "doomed")
    assert registry.original("gp_fake_target", "doomed") == "bye"


def test_unknown_patch_name_lists_the_known_ones():
    registry = Registry()
    registry.register(PatchSpec("alpha", "os", "os", flag="a"))
    with pytest.raises(UnknownPatchError, match="unknown patch 'nope'; known patches: alpha"):
        registry.patch("nope")
    with pytest.raises(UnknownPatchError):
        registry.is_patched("nope")


def test_green_module_declaring_another_target_is_refused(fake_modules):
    registry = Registry()
    registry.register(PatchSpec("wrong", "os", "gp_fake_green", flag="w"))
    with pytest.raises(PatchError, match="targets 'gp_fake_target'"):
        registry.patch("wrong")


def test_declared_but_missing_name_is_an_error(fake_modules):
    _, green = fake_modules
    green.__implements__ = ["blocking", "ghost"]
    registry = Registry()
    registry.register(PatchSpec("fake", "gp_fake_target", "gp_fake_green", flag="fake"))
    with pytest.raises(PatchError, match="declares 'ghost' but does not define it"):
        registry.patch("fake")


def test_after_hook_runs_once_with_the_target(fake_modules):
    calls = []
    registry = Registry()
    registry.register(
        PatchSpec(
            "fake",
            "gp_fake_target",
            "gp_fake_green",
            flag="fake",
            after=lambda module, reg: calls.append(module.__name__),
        )
    )
    registry.patch("fake")
    registry.patch("fake")
    assert calls == ["gp_fake_target"]


def test_duplicate_registration_is_refused():
    registry = Registry()
    registry.register(PatchSpec("alpha", "os", "os", flag="a"))
    with pytest.raises(PatchError, match="already registered"):
        registry.register(PatchSpec("alpha", "os", "os", flag="a"))


def test_builtin_table_lists_the_stdlib_patches():
    from greenpatch.patcher import registry

    names = {spec.name for spec in registry.specs}
    assert {"socket", "dns", "time", "select", "selectors"} <= names
    for spec in registry.specs:
        assert spec.description, f"{spec.name} has no description"


def test_wrap_original_makes_original_hand_out_the_wrapper(fake_modules):
    target, _ = fake_modules
    original = target.blocking
    registry = Registry()
    registry.register(PatchSpec("fake", "gp_fake_target", "gp_fake_green", flag="fake"))
    registry.patch("fake")
    seen = []

    def wrap(function):
        def watched():
            seen.append("call")
            return function()

        return watched

    assert registry.wrap_original("gp_fake_target", "blocking", wrap) is True
    assert registry.original("gp_fake_target", "blocking")() == "original"
    assert seen == ["call"]
    assert target.blocking() == "green"  # the patch itself is untouched
    registry.unpatch("fake")
    assert target.blocking is not original and target.blocking() == "original"
    assert seen == ["call", "call"]


def test_wrap_original_of_a_name_never_patched_records_nothing(fake_modules):
    registry = Registry()
    assert registry.wrap_original("gp_fake_target", "blocking", lambda f: f) is False
    with pytest.raises(AttributeError):
        registry.original("gp_fake_target", "never_there")


def test_a_patch_naming_several_missing_names_swaps_nothing(fake_modules):
    target, green = fake_modules
    green.__implements__ = ["blocking", "ghost", "phantom"]
    original = target.blocking
    registry = Registry()
    registry.register(PatchSpec("fake", "gp_fake_target", "gp_fake_green", flag="fake"))
    with pytest.raises(PatchError, match="declares 'ghost', 'phantom'"):
        registry.patch("fake")
    assert target.blocking is original
    assert not registry.is_patched("fake")
    assert registry.originals() == {}


def test_a_failing_after_hook_rolls_the_patch_back(fake_modules):
    target, _ = fake_modules
    original, doomed = target.blocking, target.doomed

    def broken(module, reg):
        raise ValueError("the hook broke")

    registry = Registry()
    registry.register(
        PatchSpec(
            "fake",
            "gp_fake_target",
            "gp_fake_green",
            flag="fake",
            remove=("doomed",),
            after=broken,
        )
    )
    with pytest.raises(
        PatchError, match="'fake' failed and was rolled back: the hook broke"
    ) as info:
        registry.patch("fake")
    assert isinstance(info.value.__cause__, ValueError)
    assert target.blocking is original and target.doomed is doomed
    assert not hasattr(target, "added")
    assert not registry.is_patched("fake") and registry.originals() == {}


def test_a_failing_swap_puts_back_the_names_already_swapped(fake_modules):
    target, _ = fake_modules
    original = target.blocking

    class ReadOnly(types.ModuleType):
        def __setattr__(self, attr, value):
            if attr == "added":
                raise AttributeError("read-only attribute")
            super().__setattr__(attr, value)

    target.__class__ = ReadOnly
    registry = Registry()
    registry.register(PatchSpec("fake", "gp_fake_target", "gp_fake_green", flag="fake"))
    with pytest.raises(PatchError, match="rolled back: read-only attribute"):
        registry.patch("fake")
    assert target.blocking is original


def test_unpatch_restores_what_the_patch_found_not_an_older_original(fake_modules):
    # Someone replaced the function after the first patch was undone: a second
    # patch and its unpatch must give back that newer object, not the first one.
    target, _ = fake_modules
    registry = Registry()
    registry.register(PatchSpec("fake", "gp_fake_target", "gp_fake_green", flag="fake"))
    registry.patch("fake")
    registry.unpatch("fake")

    def newer():
        return "newer"

    target.blocking = newer
    registry.patch("fake")
    assert target.blocking() == "green"
    registry.unpatch("fake")
    assert target.blocking is newer
