"""``pytest --greenpatch`` / ``pytest -p greenpatch`` (docs/pytest-plugin.md).

Each test runs pytest in a subprocess on a small project written to tmp_path,
as a user would: the plugin is found through its ``pytest11`` entry point.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import greenpatch_pytest
from greenpatch.compat_tests.stall import DEFAULT_THRESHOLD, read_records
from greenpatch.compat_tests.stall_advice import STALL_ADVICE
from greenpatch.pytest_plugin import SECTION_TITLE, late_patch_summary

CONFTEST = """
import socket

import pytest

SOCKET_AT_CONFTEST_IMPORT = socket.socket


@pytest.fixture
def conftest_socket():
    return SOCKET_AT_CONFTEST_IMPORT
"""

TEST_COLLECTION = """
import socket
import sys

SOCKET_AT_IMPORT = socket.socket
GREENPATCH_AT_IMPORT = [name for name in sys.modules if name.partition(".")[0] == "greenpatch"]


def _stdlib_socket():
    from greenpatch.patcher import original

    return original("socket", "socket")


def test_module_patched_at_collection():
    assert SOCKET_AT_IMPORT is not _stdlib_socket()


def test_conftest_patched_at_import(conftest_socket):
    assert conftest_socket is not _stdlib_socket()


def test_plugin_loaded_but_inert(pytestconfig):
    # Loaded through the entry point in every run; greenpatch itself never imported.
    assert pytestconfig.pluginmanager.has_plugin("greenpatch")
    assert GREENPATCH_AT_IMPORT == []
"""

TEST_STALL = """
def test_quick():
    pass


def test_blocks():
    from greenpatch.patcher import original

    blocking_sleep = original("time", "sleep")  # the stdlib's: the patch does not reach it
    blocking_sleep(0.4)  # STALL LINE
"""


def _line_of(source: str, marker: str) -> int:
    return next(n for n, line in enumerate(source.splitlines(), 1) if marker in line)


@pytest.fixture(autouse=True, scope="module")
def _entry_point_installed() -> None:
    names = [ep.name for ep in importlib.metadata.entry_points(group="pytest11")]
    assert "greenpatch" in names, (
        "the pytest11 entry point 'greenpatch' is not installed: run `pip install -e .`"
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_collection.py").write_text(TEST_COLLECTION)
    (tmp_path / "test_stall.py").write_text(TEST_STALL)
    return tmp_path


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")
        and not key.startswith("GREENPATCH_")
    }
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args]
    return subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=180
    )


def _outcomes(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """nodeid -> PASSED/FAILED/ERROR, from the -rA short summary."""
    found: dict[str, str] = {}
    for line in result.stdout.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR") and "::" in rest:
            found[rest.split(" ")[0]] = word
    return found


@pytest.mark.parametrize("spelling", [["-p", "greenpatch"], ["--greenpatch"]])
def test_patch_comes_before_conftests_and_test_modules(project: Path, spelling: list[str]):
    result = run_pytest(project, *spelling, "test_collection.py")
    outcomes = _outcomes(result)
    assert outcomes == {
        "test_collection.py::test_module_patched_at_collection": "PASSED",
        "test_collection.py::test_conftest_patched_at_import": "PASSED",
        "test_collection.py::test_plugin_loaded_but_inert": "FAILED",
    }, result.stdout + result.stderr
    assert "greenpatch: patched before collection (" in result.stdout
    assert SECTION_TITLE in result.stdout


def test_without_the_flag_the_plugin_does_nothing(project: Path):
    result = run_pytest(project, "test_collection.py", "test_stall.py")
    outcomes = _outcomes(result)
    assert outcomes == {
        "test_collection.py::test_module_patched_at_collection": "FAILED",
        "test_collection.py::test_conftest_patched_at_import": "FAILED",
        "test_collection.py::test_plugin_loaded_but_inert": "PASSED",
        "test_stall.py::test_quick": "PASSED",
        "test_stall.py::test_blocks": "PASSED",
    }, result.stdout + result.stderr
    assert SECTION_TITLE not in result.stdout
    assert "patched before collection" not in result.stdout


def test_a_stall_is_reported_at_its_line(project: Path):
    line = _line_of(TEST_STALL, "STALL LINE")
    result = run_pytest(
        project, "--greenpatch", "--greenpatch-stalls=out/stalls.jsonl", "test_stall.py"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.split(SECTION_TITLE, 1)[1]
    listing = summary.split("short test summary info", 1)[0]
    assert "test_stall.py::test_blocks  (1 stall)" in listing, result.stdout
    assert f"[blocked]  test_stall.py:{line} in test_blocks" in listing, result.stdout
    assert f"  [blocked] {STALL_ADVICE['blocked']}" in listing
    assert "test_stall.py::test_quick" not in listing
    records = read_records(project / "out" / "stalls.jsonl")
    blocks = [r for r in records if r["test"] == "test_stall.py::test_blocks"]
    assert len(blocks) == 1, records
    assert blocks[0]["frame"] == f"{project / 'test_stall.py'}:{line} in test_blocks"
    assert blocks[0]["kind"] == "blocked"
    json.dumps(records)  # plain JSON, as the harness's stall files


def test_strict_fails_the_test_that_stalled(project: Path):
    line = _line_of(TEST_STALL, "STALL LINE")
    result = run_pytest(project, "-p", "greenpatch", "--greenpatch-strict", "test_stall.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert _outcomes(result) == {
        "test_stall.py::test_quick": "PASSED",
        "test_stall.py::test_blocks": "FAILED",
    }, result.stdout + result.stderr
    failure = result.stdout.split("FAILURES", 1)[1].split(SECTION_TITLE, 1)[0]
    assert "greenpatch --greenpatch-strict: the test held the hub's loop" in failure
    assert f"test_stall.py:{line} in test_blocks" in failure


def test_a_threshold_above_the_stall_reports_none(project: Path):
    result = run_pytest(
        project,
        "--greenpatch",
        "--greenpatch-strict",
        "--greenpatch-stall-threshold=5",
        "test_stall.py",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no test held the loop for more than 5 s" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--greenpatch-strict"], "--greenpatch-strict: greenpatch's pytest plugin is off"),
        (
            ["--greenpatch", "--greenpatch-stall-threshold=soon"],
            "'soon': expected a positive number of seconds",
        ),
    ],
)
def test_usage_errors(project: Path, args: list[str], message: str):
    result = run_pytest(project, *args, "test_stall.py")
    assert result.returncode == 4, result.stdout + result.stderr
    assert message in result.stderr


def test_the_door_imports_nothing_of_greenpatch():
    code = (
        "import sys, greenpatch_pytest; "
        "print([m for m in sys.modules if m.partition('.')[0] == 'greenpatch'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_help_default_is_the_harness_threshold():
    assert float(greenpatch_pytest.DEFAULT_THRESHOLD_TEXT) == DEFAULT_THRESHOLD


def test_advice_is_the_harness_advice():
    display = pytest.importorskip("greenpatch.compat_tests.display")
    assert display.STALL_ADVICE == STALL_ADVICE


def test_late_patch_problems_become_one_warning():
    messages = [
        "ssl was imported before patch_all(): SSL sockets created before patching stay ...",
        "module 'trio._socket' was imported before patch_all() and holds stdlib_type (the "
        "original socket.socket); it will keep blocking. Call greenpatch.patch_all() ...",
        "OS threads were started before patch_all(): 'worker'; they keep running ...",
    ]
    summary = late_patch_summary(messages)
    assert summary is not None
    assert "ssl; trio._socket (socket.socket); OS threads were started before patch_all(): " in (
        summary
    )
    assert "greenpatch run -m pytest --greenpatch" in summary
    assert late_patch_summary([]) is None


def test_a_patched_run_without_the_plugin_survives_filterwarnings_error(tmp_path: Path):
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings =\n    error\n")
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    }
    command = [sys.executable, "-m", "greenpatch", "run", "-m", "pytest", "-p", "no:cacheprovider"]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr


TEST_WITHOUT = """
import greenpatch


def test_zmq_left_out_and_the_rest_patched():
    assert greenpatch.is_patched("socket")
    assert not greenpatch.is_patched("zmq")
"""


def test_greenpatch_without_leaves_a_plugin_out(tmp_path: Path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_without.py").write_text(TEST_WITHOUT)
    result = run_pytest(tmp_path, "--greenpatch", "--greenpatch-without", "zmq")
    assert _outcomes(result) == {
        "test_without.py::test_zmq_left_out_and_the_rest_patched": "PASSED"
    }, result.stdout + result.stderr
    assert "; left out: zmq; loop stalls over" in result.stdout


def test_without_greenpatch_without_the_plugin_is_armed(tmp_path: Path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_without.py").write_text(TEST_WITHOUT)
    result = run_pytest(tmp_path, "--greenpatch")
    assert _outcomes(result) == {
        "test_without.py::test_zmq_left_out_and_the_rest_patched": "FAILED"
    }, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--greenpatch", "--greenpatch-without", "zqm"],
            "ERROR: --greenpatch-without zqm: not a patch_all flag; known: dns, ",
        ),
        (
            ["--greenpatch-without", "zmq"],
            "--greenpatch-without: greenpatch's pytest plugin is off in this run",
        ),
    ],
)
def test_greenpatch_without_usage_errors(project: Path, args: list[str], message: str):
    result = run_pytest(project, *args, "test_stall.py")
    assert result.returncode == 4, result.stdout + result.stderr
    assert message in result.stderr


def test_greenpatch_without_refuses_a_flag_already_in_force(project: Path):
    # Under `greenpatch run` the patch is made before pytest starts: leaving a
    # flag out then is too late, and must not pass silently.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD")
    }
    command = [sys.executable, "-m", "greenpatch", "run", "-m", "pytest", "-p", "no:cacheprovider"]
    command += ["--greenpatch", "--greenpatch-without", "zmq", "test_stall.py"]
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 4, result.stdout + result.stderr
    assert "--greenpatch-without zmq: zmq is already patched in this process" in result.stderr
    assert "greenpatch run --without zmq -m pytest" in result.stderr
