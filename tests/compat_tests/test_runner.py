"""The runner's watchdog: crashes by signal, the whole-run deadline, and resuming."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from greenpatch.compat_tests.runner import RunSpec, build_command, run_mode

from .conftest import TINYLIB

ID = "check_tiny.py::"


def _spec(tmp_path: Path, **changes: object) -> RunSpec:
    spec = RunSpec(
        python=sys.executable,
        cwd=TINYLIB,
        pytest_args=["check_tiny.py", "-q"],
        work_dir=tmp_path / "work",
        per_test_timeout=4,
    )
    for name, value in changes.items():
        setattr(spec, name, value)
    return spec


def test_patched_command_patches_before_pytest_starts() -> None:
    command = build_command("/py", "patched", ["tests"])
    assert command[:6] == ["/py", "-m", "greenpatch", "run", "-m", "pytest"]
    assert build_command("/py", "plain", ["tests"])[:3] == ["/py", "-m", "pytest"]


def test_segfault_is_recorded_as_a_crash_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TINYLIB_CRASH", "segv")
    only = [ID + "test_crashes_when_patched", ID + "test_runs_after_the_trouble"]
    run = run_mode(_spec(tmp_path), "patched", only=only)
    crashed = run.records[ID + "test_crashes_when_patched"]
    assert crashed.outcome == "crashed"
    assert "SIGSEGV" in (crashed.detail or "")
    assert "Segmentation fault" in (crashed.detail or "")  # faulthandler's report
    assert run.records[ID + "test_runs_after_the_trouble"].outcome == "passed"
    assert run.processes == 2
    assert not run.incomplete


def test_whole_run_deadline_stops_the_run_and_marks_it_incomplete(tmp_path: Path) -> None:
    spec = _spec(tmp_path, per_test_timeout=60, run_timeout=2)
    run = run_mode(spec, "patched", only=[ID + "test_hangs_when_patched"])
    assert run.incomplete
    assert any("whole-run timeout" in error for error in run.errors)
    assert run.duration < 30


def test_only_runs_just_the_named_tests(tmp_path: Path) -> None:
    run = run_mode(_spec(tmp_path), "plain", only=[ID + "test_passes"])
    assert list(run.records) == [ID + "test_passes"]


def test_events_stream_to_the_callback_as_tests_finish(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    only = [ID + "test_passes", ID + "test_fails_both"]
    run_mode(
        _spec(tmp_path),
        "plain",
        only=only,
        on_event=lambda kind, event: seen.append((kind, event.get("nodeid", ""))),
    )
    kinds = [kind for kind, _ in seen]
    assert kinds[0] == "session_start"
    assert kinds.count("start") == kinds.count("result") == 2
    assert kinds[-1] == "session_finish"


def test_run_stops_after_hangs_in_a_row_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every test hangs once the first has: as when a shared server freezes.
    monkeypatch.setenv("TINYLIB_HANG_ALL", "1")
    spec = _spec(tmp_path, per_test_timeout=4, max_hangs_in_a_row=2)
    run = run_mode(spec, "patched")
    outcomes = [record.outcome for record in run.records.values()]
    assert outcomes[-2:] == ["hung", "hung"]
    assert run.incomplete
    assert any("2 tests hung in a row" in error for error in run.errors)
    assert len(run.records) < run.collected


def test_stalls_in_an_installed_path_library_are_reported_in_the_users_tree(
    tmp_path: Path,
) -> None:
    # As a venv built from a path manifest holds it: the library installed (a
    # copy), the tests run from the user's tree, which has the library in src/.
    from greenpatch.compat_tests.stall import read_records

    library = 'import greenpatch\n\n\ndef wait():\n    greenpatch.original("time", "sleep")(0.3)\n'
    tree = tmp_path / "checkout"
    (tree / "src").mkdir(parents=True)
    (tree / "tests").mkdir()
    (tree / "src" / "slowlib.py").write_text(library)
    (tree / "tests" / "check_slow.py").write_text(
        "import slowlib\n\ndef test_waits():\n    slowlib.wait()\n"
    )
    (tree / "pytest.ini").write_text("[pytest]\npython_files = check_*.py\n")
    installed = tmp_path / "env" / "site-packages"
    installed.mkdir(parents=True)
    (installed / "slowlib.py").write_text(library)
    stall_file = tmp_path / "stalls.jsonl"
    spec = _spec(
        tmp_path,
        cwd=tree,
        pytest_args=["tests", "-q"],
        env={"PYTHONPATH": os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")])},
        patched_env={"GREENPATCH_STALL_FILE": str(stall_file)},
    )
    run = run_mode(spec, "patched")
    assert run.records["tests/check_slow.py::test_waits"].outcome == "passed"
    (record,) = read_records(stall_file)
    assert record["frame"] == f"{tree / 'src' / 'slowlib.py'}:5 in wait"
