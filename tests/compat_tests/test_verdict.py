"""From two outcomes to one verdict."""

from __future__ import annotations

import dataclasses

import pytest

from greenpatch.compat_tests.manifest import Expected, load_manifest
from greenpatch.compat_tests.runner import ModeRun, TestRecord
from greenpatch.compat_tests.verdict import confirm, judge, judge_all

from .conftest import TINYLIB


def _r(outcome: str, network: list[str] | None = None) -> TestRecord:
    return TestRecord(
        nodeid="t", outcome=outcome, detail=f"{outcome} detail", network=network or []
    )


@pytest.mark.parametrize(
    ("plain", "patched", "verdict"),
    [
        ("passed", "passed", "passed"),
        ("passed", "failed", "regression"),
        ("passed", "error", "regression"),
        ("passed", "hung", "regression"),
        ("passed", "crashed", "regression"),
        ("failed", "passed", "fixed"),
        ("failed", "failed", "failed_both"),
        ("failed", "hung", "hung"),
        ("hung", "hung", "hung"),
        ("crashed", "failed", "crashed"),
        ("skipped", "skipped", "skipped"),
        ("passed", "skipped", "skipped"),
    ],
)
def test_outcome_pairs_give_their_verdict(plain: str, patched: str, verdict: str) -> None:
    assert judge("t", _r(plain), _r(patched)).verdict == verdict


def test_regression_carries_the_patched_failure() -> None:
    verdict = judge("t", _r("passed"), _r("failed"))
    assert verdict.error == "failed detail"


def test_expected_incompatibility_is_not_a_regression() -> None:
    verdict = judge("t", _r("passed"), _r("failed"), expected_reason="uses epoll")
    assert (verdict.verdict, verdict.reason) == ("expected", "uses epoll")


def test_expected_entry_that_passes_asks_to_be_dropped() -> None:
    verdict = judge("t", _r("passed"), _r("passed"), expected_reason="uses epoll")
    assert verdict.verdict == "passed"
    assert "drop the entry" in (verdict.reason or "")


def test_network_refusal_beats_every_other_verdict() -> None:
    verdict = judge("t", _r("passed"), _r("failed", network=["10.0.0.1 port 80"]))
    assert (verdict.verdict, verdict.reason) == ("needs_network", "10.0.0.1 port 80")


def test_only_one_mode_still_gets_a_verdict() -> None:
    assert judge("t", None, _r("failed")).verdict == "failed_both"
    assert judge("t", _r("passed"), None).verdict == "passed"


def test_rerun_that_fails_again_confirms_the_regression() -> None:
    verdict = judge("t", _r("passed"), _r("failed"))
    confirm(verdict, _r("passed"), _r("failed"))
    assert (verdict.verdict, verdict.flaky) == ("regression", False)
    assert verdict.rerun == {"plain": "passed", "patched": "failed"}


@pytest.mark.parametrize(("plain", "patched"), [("passed", "passed"), ("failed", "failed")])
def test_rerun_that_disagrees_makes_it_flaky(plain: str, patched: str) -> None:
    verdict = judge("t", _r("passed"), _r("failed"))
    confirm(verdict, _r(plain), _r(patched))
    assert (verdict.verdict, verdict.flaky) == ("flaky", True)


def test_expected_entries_match_by_node_id_prefix() -> None:
    plain, patched = ModeRun(mode="plain"), ModeRun(mode="patched")
    for nodeid in ("t.py::T::test_a[1]", "t.py::T::test_a[2]", "t.py::U::test_b"):
        plain.records[nodeid] = _r("passed")
        patched.records[nodeid] = _r("failed")
    manifest = load_manifest(TINYLIB / "suite.toml")
    manifest = dataclasses.replace(manifest, expected=(Expected(id="t.py::T", reason="why"),))
    verdicts = {v.nodeid: v.verdict for v in judge_all(plain, patched, manifest.expected_reason)}
    assert verdicts == {
        "t.py::T::test_a[1]": "expected",
        "t.py::T::test_a[2]": "expected",
        "t.py::U::test_b": "regression",
    }


def test_test_missing_from_a_run_that_happened_is_never_passed() -> None:
    plain, patched = ModeRun(mode="plain"), ModeRun(mode="patched")
    plain.records["t.py::a"] = _r("passed")
    (verdict,) = judge_all(plain, patched)
    assert (verdict.plain, verdict.patched, verdict.verdict) == ("passed", None, "skipped")
    assert verdict.reason == "did not run in the patched run"


def test_mode_that_was_not_asked_for_leaves_the_other_to_judge() -> None:
    plain = ModeRun(mode="plain")
    plain.records["t.py::a"] = _r("passed")
    (verdict,) = judge_all(plain, None)
    assert (verdict.patched, verdict.verdict) == (None, "passed")


def test_rerun_that_never_reached_the_test_leaves_it_a_regression() -> None:
    verdict = judge("t", _r("passed"), _r("hung"))
    confirm(verdict, _r("passed"), None)
    assert (verdict.verdict, verdict.flaky) == ("regression", False)
    assert verdict.rerun == {"plain": "passed", "patched": "not run"}
