"""tools/stdlib_tests.py: the plain-vs-patched comparison of CPython's test modules.

The real CPython suites take minutes; these tests run the script on a small fake
module (``fake_stdlib_suite.py``) whose tests pass, fail, hang and crash only
under the patch.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "stdlib_tests.py"
FAKE = "tests.tools.fake_stdlib_suite"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stdlib_tests", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stdlib_tests"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


stdlib_tests = _load_script()


@pytest.mark.parametrize(
    ("when", "version", "expected"),
    [
        ("", (3, 11, 7), True),
        (">=3.12", (3, 11, 7), False),
        (">=3.12", (3, 12, 0), True),
        ("==3.11", (3, 11, 7), True),
        (">=3.10, <3.12", (3, 11, 7), True),
        (">=3.10, <3.12", (3, 12, 1), False),
        ("!=3.11", (3, 11, 2), False),
    ],
)
def test_version_condition_compares_the_components_it_names(
    when: str, version: tuple[int, ...], expected: bool
) -> None:
    assert stdlib_tests.version_matches(when, version) is expected


def test_bad_version_condition_names_the_clause() -> None:
    with pytest.raises(ValueError, match=re.escape("'~3.11'")):
        stdlib_tests.version_matches("~3.11", (3, 11, 0))


def test_expectations_keep_only_rows_for_this_python(tmp_path: Path) -> None:
    path = tmp_path / "expected.toml"
    path.write_text(
        "[test_x]\n"
        '"A.test_a" = "plain reason"\n'
        '"A.test_b" = { reason = "new in 3.12", when = ">=3.12" }\n'
        '"B.*" = { reason = "hangs", skip = true }\n'
    )
    rows = stdlib_tests.load_expectations(path, (3, 11, 7))["test_x"]
    assert [(r.pattern, r.reason, r.skip) for r in rows] == [
        ("A.test_a", "plain reason", False),
        ("B.*", "hangs", True),
    ]
    assert rows[1].matches("B.test_anything")


def test_expectation_without_reason_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "expected.toml"
    path.write_text('[test_x]\n"A.test_a" = { when = ">=3.12" }\n')
    with pytest.raises(ValueError, match="needs a reason"):
        stdlib_tests.load_expectations(path, (3, 11, 7))


def test_shipped_expectations_parse() -> None:
    stdlib_tests.load_expectations(stdlib_tests.DEFAULT_EXPECTED, sys.version_info[:3])


def test_table_counts_only_tests_that_pass_plain_and_fail_patched(tmp_path: Path) -> None:
    expected = tmp_path / "expected.toml"
    expected.write_text(
        f'["{FAKE}"]\n'
        '"Behaviour.test_fails_patched_listed" = "listed on purpose"\n'
        '"Behaviour.test_hangs_listed" = { reason = "hangs the loop", skip = true }\n'
        '"Behaviour.test_passes" = "stale: it passes patched"\n'
        '"Behaviour.test_only_in_another_python" = "matches no test here: not stale"\n'
        '"Behaviour.test_skipped_patched" = { reason = "not this Python", when = ">=99" }\n'
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            FAKE,
            "--path",
            str(ROOT),
            "--expected",
            str(expected),
            "--out-dir",
            str(out),
            "--hang-timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # unlisted regressions
    header, row = proc.stdout.splitlines()[:2]
    assert header.split()[:3] == ["module", "plain", "passed"]
    assert row.split()[:5] == [FAKE, "10", "8", "2", "6"]

    report = json.loads((out / "summary.json").read_text())["modules"][FAKE]
    assert report["plain_passed"] == 10
    unexpected = {entry["test"]: entry["outcome"] for entry in report["unexpected"]}
    assert unexpected == {
        "Behaviour.test_fails_patched_unlisted": "fail",
        "Behaviour.test_hangs_patched": "hang",
        "Behaviour.test_crashes_patched": "crash",
        "Behaviour.test_interrupted_patched": "error",
        "Behaviour.test_subtest_fails_patched": "fail",
        "BrokenFixturePatched.test_in_broken_class": "notrun",
    }
    expected_rows = {entry["test"]: entry for entry in report["expected"]}
    assert expected_rows["Behaviour.test_fails_patched_listed"]["reason"] == "listed on purpose"
    assert expected_rows["Behaviour.test_hangs_listed"]["outcome"] == "excluded"
    assert report["skipped_patched"] == ["Behaviour.test_skipped_patched"]
    assert report["stale_expectations"] == ["Behaviour.test_passes"]
    assert report["patches"]  # the patched run really was patched
    assert report["patched_time"] > 0 and report["plain_time"] > 0
    # The hang was caught by the runner's watchdog, which shows the greenlet's stack.
    events = [json.loads(line) for line in (out / f"{FAKE}.patched.jsonl").open()]
    hang = next(e for e in events if e["event"] == "hang")
    assert hang["id"].endswith("test_hangs_patched")
    assert "time.sleep(3600)" in hang["stacks"]
