"""The harness end to end on the fixture suite (tinylib): one run of both modes,
then one assertion per verdict it must reach.  The suite runs in this very
environment (``environment = "current"``), so nothing is built or downloaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from greenpatch.compat_tests import runner
from greenpatch.compat_tests.harness import HarnessOptions, SuiteListener, run_suite
from greenpatch.compat_tests.manifest import load_manifest
from greenpatch.reports import Result, TestVerdict, read_result

from .conftest import TINYLIB, write_manifest

ID = "check_tiny.py::"


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Result, Path]]:
    out = tmp_path_factory.mktemp("out")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYLIB_STATE", str(tmp_path_factory.mktemp("state")))
        manifest = load_manifest(TINYLIB / "suite.toml")
        yield run_suite(manifest, HarnessOptions(out_dir=out, cache_dir=out / "cache"))


@pytest.fixture(scope="module")
def tests(outcome: tuple[Result, Path]) -> dict[str, TestVerdict]:
    return {test.nodeid.removeprefix(ID): test for test in outcome[0].tests}


def test_result_file_is_written_and_reads_back(outcome: tuple[Result, Path]) -> None:
    result, path = outcome
    assert path.name == f"tinylib-0.1-py{'.'.join(result.python.split('.')[:2])}.json"
    assert read_result(path) == result
    assert not result.incomplete
    # The run used its own cache: the command says so, or a re-run builds elsewhere.
    cache = result.reproduce.split()[0]
    assert cache.startswith("GREENPATCH_CACHE_DIR=") and cache.endswith("/cache")
    assert " greenpatch compat run " in result.reproduce


def test_both_modes_ran_and_were_counted(outcome: tuple[Result, Path]) -> None:
    plain, patched = outcome[0].modes["plain"], outcome[0].modes["patched"]
    assert plain.counts["passed"] == 7
    assert plain.processes == 1
    # The hang and the crash each cost the patched run one process.
    assert patched.processes == 3
    assert patched.counts["hung"] == patched.counts["crashed"] == 1
    assert patched.command[1:5] == ["-m", "greenpatch", "run", "-m"]


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("test_passes", "passed"),
        ("test_fails_both", "failed_both"),
        ("test_regression", "regression"),
        ("test_fixed_by_patch", "fixed"),
        ("test_expected_incompatibility", "expected"),
        ("test_skipped", "skipped"),
        ("test_deselected_by_id", "skipped"),
        ("test_deselected_by_marker", "skipped"),
        ("test_hangs_when_patched", "regression"),
        ("test_crashes_when_patched", "regression"),
        ("test_needs_network", "needs_network"),
        ("test_flaky_under_patch", "flaky"),
        ("test_runs_after_the_trouble", "passed"),
    ],
)
def test_each_fixture_test_gets_its_verdict(
    tests: dict[str, TestVerdict], name: str, verdict: str
) -> None:
    assert tests[name].verdict == verdict


def test_deselected_tests_carry_the_manifest_reason(tests: dict[str, TestVerdict]) -> None:
    assert tests["test_deselected_by_marker"].plain == "deselected"
    assert "not a cluster" in (tests["test_deselected_by_marker"].reason or "")
    assert "by node id" in (tests["test_deselected_by_id"].reason or "")


def test_regression_has_the_error_excerpt_and_a_confirming_rerun(
    tests: dict[str, TestVerdict],
) -> None:
    regression = tests["test_regression"]
    assert "tinylib breaks under the patch" in (regression.error or "")
    assert regression.rerun == {"plain": "passed", "patched": "failed"}
    assert not regression.flaky


def test_hung_test_has_the_stacks_of_the_frozen_process(tests: dict[str, TestVerdict]) -> None:
    hung = tests["test_hangs_when_patched"]
    assert hung.patched == "hung"
    assert "killed by the watchdog" in (hung.error or "")
    assert "test_hangs_when_patched" in (hung.stacks or "")


def test_crashed_test_names_the_signal(tests: dict[str, TestVerdict]) -> None:
    crashed = tests["test_crashes_when_patched"]
    assert crashed.patched == "crashed"
    assert "SIGABRT" in (crashed.error or "")


def test_network_refusal_is_reported_with_the_address(tests: dict[str, TestVerdict]) -> None:
    network = tests["test_needs_network"]
    assert network.plain == network.patched == "failed"
    assert "10.255.255.1" in (network.reason or "")
    assert "--allow-network" in (network.error or "")


def test_flaky_regression_says_so(
    outcome: tuple[Result, Path], tests: dict[str, TestVerdict]
) -> None:
    flaky = tests["test_flaky_under_patch"]
    assert flaky.flaky
    assert flaky.rerun == {"plain": "passed", "patched": "passed"}
    assert any("1 flaky" in note for note in outcome[0].notes)


def test_environment_lists_installed_versions(outcome: tuple[Result, Path]) -> None:
    assert "pytest" in outcome[0].environment


def test_suite_without_its_service_is_not_run_never_passed(
    tmp_path: Path, tinylib_manifest_text: str
) -> None:
    text = tinylib_manifest_text + '\n[services.redis]\noption = "--redis-url"\n'
    manifest = load_manifest(write_manifest(tmp_path, text))
    options = HarnessOptions(
        out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache",
        # Nothing listens on port 1 of loopback.
        services={"redis": "redis://127.0.0.1:1/0"},
    )
    result, path = run_suite(manifest, options)
    assert "no Redis server answers" in (result.not_run_reason or "")
    assert result.incomplete
    assert not result.tests
    assert read_result(path).not_run_reason == result.not_run_reason


def test_broken_pytest_arguments_make_the_suite_not_run(
    tmp_path: Path, tinylib_manifest_text: str
) -> None:
    text = tinylib_manifest_text.replace('args = ["-q"]', 'args = ["--no-such-option"]')
    manifest = load_manifest(write_manifest(tmp_path, text))
    result, _ = run_suite(manifest, HarnessOptions(out_dir=tmp_path, only="plain"))
    assert "ran no test" in (result.not_run_reason or "")
    assert "no-such-option" in (result.not_run_reason or "")
    assert result.incomplete


class _CancelWhenPatchedStarts(SuiteListener):
    def collected(self, suite: str, mode: str, count: int) -> None:
        if mode == "patched":
            runner.CANCEL.set()


def test_interrupted_patched_run_keeps_plain_results_without_calling_them_passed(
    tmp_path: Path, tinylib_manifest_text: str
) -> None:
    # Under the patch the first test hangs (for 60 s): the run is cancelled in it.
    tests = '["check_tiny.py::test_hangs_when_patched", "check_tiny.py::test_passes"]'
    text = tinylib_manifest_text.replace('tests = ["check_tiny.py"]', f"tests = {tests}")
    manifest = load_manifest(write_manifest(tmp_path, text))
    options = HarnessOptions(out_dir=tmp_path / "out")
    try:
        with pytest.raises(KeyboardInterrupt):
            run_suite(manifest, options, _CancelWhenPatchedStarts())
    finally:
        runner.CANCEL.clear()
    (path,) = (tmp_path / "out").glob("tinylib-*.json")
    result = read_result(path)
    assert result.incomplete
    assert result.modes["patched"].ran
    assert len(result.tests) == 2
    for test in result.tests:
        assert (test.plain, test.patched, test.verdict) == ("passed", None, "skipped")
        assert test.reason == "did not run in the patched run"


def test_time_waiting_out_hangs_is_kept_apart(outcome: tuple[Result, Path]) -> None:
    plain, patched = outcome[0].modes["plain"], outcome[0].modes["patched"]
    assert plain.watchdog_seconds == 0
    assert patched.watchdog_seconds >= 4  # the fixture's per-test timeout
    assert patched.active_duration == patched.duration - patched.watchdog_seconds
