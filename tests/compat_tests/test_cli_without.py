"""``greenpatch compat run --without FLAG``: the patched run and the probe leave
a ``patch_all`` flag out, and the result (its file, its report row, its
``reproduce``) says so.

The check that the flag really was off is made inside the suite: a tiny local
suite whose test and probe fail when the ``zmq`` plugin is in force under the
patch.  Run with ``--without zmq`` it passes; run without, the same test is a
regression and the probe an error -- so the fixture tells the two apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from greenpatch.compat_tests import cli, probes
from greenpatch.compat_tests.runner import build_command
from greenpatch.reports import read_result
from greenpatch.reports.html import render_html
from greenpatch.reports.markdown import render_markdown
from greenpatch.reports.merge import load_matrix
from greenpatch.reports.model import Result
from greenpatch.reports.validate import load_result

try:
    import rich  # noqa: F401
except ImportError:  # pragma: no cover - the compat extra is not installed
    pytest.skip("greenpatch compat needs the compat extra (rich)", allow_module_level=True)

CHECK = """
import greenpatch


def test_zmq_plugin_is_off_when_patched():
    if greenpatch.is_patched("socket"):  # the patched run; plain has nothing to check
        assert not greenpatch.is_patched("zmq"), "the zmq plugin is in force"
"""

PROBE = """
import time

import greenpatch


def probe(context):
    assert greenpatch.is_patched("socket"), "the probe is not patched"
    assert not greenpatch.is_patched("zmq"), "the zmq plugin is in force in the probe"
    time.sleep(context.delay)
"""


def _suite(root: Path) -> Path:
    """A path suite in ``root``: one test, one probe, the current environment."""
    (root / "pytest.ini").write_text("[pytest]\npython_files = check_*.py\n")
    (root / "check_flags.py").write_text(CHECK)
    (root / "flag_probe.py").write_text(PROBE)
    manifest = root / "suite.toml"
    manifest.write_text(
        f"""
[suite]
name = "flagcheck"
distribution = "flagcheck"
version = "0.1"

[source]
kind = "path"
path = "{root}"
tests = ["check_flags.py"]

[environment]
kind = "current"

[pytest]
args = ["-q"]
per_test_timeout = 30

[probe]
callable = "flag_probe.py:probe"
concurrency = 4
delay = 0.1
"""
    )
    return manifest


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The suite run twice into one --out: with --without zmq, then without it."""
    manifest = _suite(tmp_path_factory.mktemp("suite"))
    out = tmp_path_factory.mktemp("out")
    base = ["compat", "run", str(manifest), "--out", str(out), "--fail-on", "none"]
    assert cli.main([*base, "--without", "zmq", "--without", "zmq"]) == 0
    assert cli.main(base) == 0
    return manifest, out


def _result_files(out: Path) -> dict[str, Path]:
    return {path.name: path for path in out.glob("flagcheck-*.json")}


def _short_python() -> str:
    return "{}.{}".format(*sys.version_info[:2])


def test_the_patched_run_and_the_probe_really_had_the_flag_off(runs: tuple[Path, Path]) -> None:
    _, out = runs
    name = f"flagcheck-0.1-py{_short_python()}-without-zmq.json"
    result = read_result(_result_files(out)[name])
    assert [(t.verdict, t.plain, t.patched) for t in result.tests] == [
        ("passed", "passed", "passed")
    ]
    assert result.probe is not None and result.probe["error"] is None, result.probe
    assert result.cooperation == "cooperative"


def test_the_same_suite_with_the_plugin_on_fails_its_check(runs: tuple[Path, Path]) -> None:
    _, out = runs
    result = read_result(_result_files(out)[f"flagcheck-0.1-py{_short_python()}.json"])
    assert [test.verdict for test in result.tests] == ["regression"]
    assert "the zmq plugin is in force" in (result.tests[0].error or "")
    assert "the zmq plugin is in force in the probe" in str(result.probe)
    assert result.without == []


def test_the_result_records_what_was_left_out_and_how_to_reproduce_it(
    runs: tuple[Path, Path],
) -> None:
    manifest, out = runs
    path = _result_files(out)[f"flagcheck-0.1-py{_short_python()}-without-zmq.json"]
    result = load_result(path)  # the shipped schema accepts the field
    assert result.without == ["zmq"]  # given twice, recorded once
    assert result.reproduce == f"greenpatch compat run {manifest} --without zmq"
    command = result.modes["patched"].command
    assert command[command.index("run") + 1 : command.index("-m", 3)] == ["--without", "zmq"]
    assert "--without" not in result.modes["plain"].command
    assert "the patched run and the probe called patch_all(zmq=False)" in result.notes


def test_a_report_shows_both_results_as_rows_of_their_own(runs: tuple[Path, Path]) -> None:
    _, out = runs
    matrix = load_matrix([out])
    assert matrix.notes == []  # not "given twice": two rows
    assert [row for row, _ in matrix.rows] == ["flagcheck", "flagcheck (patched without zmq)"]
    text = render_markdown(matrix)
    assert "| flagcheck (patched without zmq) | 0.1 | ✅ 1 passed |" in text
    assert "| flagcheck | 0.1 | ❌ 1 regression |" in text
    page = render_html(matrix)
    assert '<th scope="row">patched without zmq</th>' in page
    python = read_result(_result_files(out)[f"flagcheck-0.1-py{_short_python()}.json"]).python
    assert f"<h2>flagcheck 0.1 on Python {python}, patched without zmq <span" in page


def test_an_unknown_flag_is_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _suite(tmp_path)
    out = tmp_path / "out"
    argv = ["compat", "run", str(manifest), "--out", str(out), "--without", "zqm"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("greenpatch compat: --without zqm: not a patch_all flag; known: ")
    for flag in ("socket", "thread", "psycopg2", "zmq"):
        assert flag in err
    assert not out.exists()


def test_the_patched_command_leaves_the_flags_out_before_pytest_starts() -> None:
    command = build_command("py", "patched", ["-q"], ["psycopg2", "zmq"])
    assert command[:8] == [
        "py",
        "-m",
        "greenpatch",
        "run",
        "--without",
        "psycopg2",
        "--without",
        "zmq",
    ]
    assert command[8:10] == ["-m", "pytest"]
    assert build_command("py", "plain", ["-q"], ["zmq"])[:3] == ["py", "-m", "pytest"]


def test_a_probe_given_an_unknown_flag_reports_it_as_its_error(tmp_path: Path) -> None:
    (tmp_path / "flag_probe.py").write_text(PROBE)
    outcome = probes.run_probe(
        python=sys.executable,
        callable="flag_probe.py:probe",
        concurrency=2,
        delay=0.05,
        http=False,
        cwd=str(tmp_path),
        without=["nosuchflag"],
    )
    assert not outcome["cooperative"]
    assert "nosuchflag" in outcome["error"] and "known" in outcome["error"]


def test_a_result_written_before_the_field_reads_as_nothing_left_out(tmp_path: Path) -> None:
    document = Result(
        suite="old",
        library="old",
        version="1.0",
        python="3.11.7",
        platform="x",
        greenpatch_version="0.1.0",
    ).to_dict()
    del document["without"]
    path = tmp_path / "old-1.0-py3.11.json"
    path.write_text(json.dumps(document))
    assert read_result(path).without == []
    assert load_result(path).variant == ""
