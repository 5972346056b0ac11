"""``greenpatch report``: files in, renderings out, and exit statuses that mean something."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from greenpatch.reports import cli
from greenpatch.reports.model import write_result
from tests.reports import samples


@pytest.fixture
def results(tmp_path: Path) -> Path:
    directory = tmp_path / "reports"
    for result in samples.matrix_results():
        short = ".".join(result.python.split(".")[:2])
        write_result(directory / f"{result.suite}-{result.version}-py{short}.json", result)
    return directory


def test_writes_all_three_renderings(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "nested"
    code = cli.main(
        [
            str(results),
            "--html",
            f"{out}/index.html",
            "--md",
            f"{out}/summary.md",
            "--junit",
            f"{out}/junit.xml",
        ]
    )
    assert code == 0
    assert (out / "index.html").read_text().startswith("<!DOCTYPE html>")
    assert "## greenpatch compat" in (out / "summary.md").read_text()
    assert "<testsuites" in (out / "junit.xml").read_text()
    err = capsys.readouterr().err
    assert "5 result(s), 2 regression(s) ->" in err and "index.html" in err


def test_without_outputs_prints_markdown(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([str(results)]) == 0
    assert capsys.readouterr().out.startswith("## greenpatch compat")


def test_dash_is_stdout(results: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([str(results), "--junit", "-"]) == 0
    assert capsys.readouterr().out.startswith("<?xml")


def test_a_corrupt_file_is_one_clear_error_and_the_rest_still_renders(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = results / "redis-5.2.1-py3.11.json"
    broken.write_text(broken.read_text()[:300])
    md = tmp_path / "summary.md"
    assert cli.main([str(results), "--md", str(md)]) == 1
    err = capsys.readouterr().err.splitlines()
    problems = [line for line in err if "not valid JSON" in line]
    assert problems == [
        f"greenpatch report: {broken}: not valid JSON (corrupt or truncated?) "
        + problems[0].split("truncated?) ", 1)[1]
    ]
    text = md.read_text()
    assert "Unreadable result files (1)" in text and "4 results" in text


def test_a_wrong_version_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "old.json"
    path.write_text('{"schema_version": 0, "suite": "x"}')
    assert cli.main([str(path)]) == 1
    assert (
        f"greenpatch report: {path}: schema_version 0 is not the supported"
        in capsys.readouterr().err
    )


def test_duplicate_cells_are_reported_on_stderr(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    again = samples.passing_result()
    again.finished_at = "2026-12-01T00:00:00+00:00"
    copy = write_result(tmp_path / "rerun" / "requests.json", again)
    assert cli.main([str(results), str(copy)]) == 0
    err = capsys.readouterr().err
    assert f"note: requests 2.32.3 on Python 3.11 was given twice: kept {copy}" in err


def test_an_unwritable_output_is_a_usage_error(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main([str(results), "--html", str(blocker / "index.html")]) == 2
    assert f"cannot write {blocker / 'index.html'}" in capsys.readouterr().err


def test_nothing_is_written_when_a_renderer_fails(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import greenpatch.reports.junit

    def broken(matrix: object) -> str:
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(greenpatch.reports.junit, "render_junit", broken)
    html = tmp_path / "index.html"
    with pytest.raises(RuntimeError):
        cli.main([str(results), "--html", str(html), "--junit", str(tmp_path / "j.xml")])
    assert not html.exists()


def test_add_arguments_builds_a_subcommand_parser() -> None:
    # As the top-level `greenpatch` cli wires it.
    parser = argparse.ArgumentParser(prog="greenpatch")
    commands = parser.add_subparsers(dest="command")
    cli.add_arguments(commands.add_parser("report", description=cli.DESCRIPTION))
    args = parser.parse_args(["report", "a.json", "b/", "--md", "s.md"])
    assert args.results == ["a.json", "b/"] and args.md == "s.md" and args.html is None


def test_module_imports_nothing_heavy_at_import_time() -> None:
    import subprocess
    import sys

    code = (
        "import sys, greenpatch.reports.cli; "
        "print(sorted(m for m in ('jinja2', 'jsonschema', 'packaging') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
