"""``greenpatch compat``: usage errors before any work, list, and a run's exit status."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from greenpatch.compat_tests import cli
from greenpatch.compat_tests.services import redis_ping

try:
    import rich  # noqa: F401
except ImportError:  # pragma: no cover - the compat extra is not installed
    pytest.skip("greenpatch compat needs the compat extra (rich)", allow_module_level=True)

from .conftest import write_manifest


def test_list_shows_the_builtin_suites(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["compat", "list"]) == 0
    out = capsys.readouterr().out
    assert "requests" in out
    assert "redis" in out


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_out_is_an_error_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert cli.main(["compat", "run", "requests", "--out", str(locked / "r")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_out_that_is_a_file_is_an_error_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["compat", "run", "requests", "--out", str(blocker / "reports")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err
    assert "not writable" in err


def test_bad_manifest_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[suite]\ndistribution = 3\n")
    assert cli.main(["compat", "run", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{bad} [suite.distribution]: expected a non-empty string" in err


@pytest.mark.parametrize("service", ["redis", "kafka=tcp://x", "redis="])
def test_malformed_service_option_is_refused(
    tmp_path: Path, service: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli.main(["compat", "run", "requests", "--out", str(tmp_path), "--service", service]) == 2
    )
    assert "--service" in capsys.readouterr().err


def _small_suite(tmp_path: Path, text: str, tests: str) -> Path:
    text = text.replace('tests = ["check_tiny.py"]', f"tests = {tests}")
    return write_manifest(tmp_path, text)


def test_regression_makes_the_run_fail_and_fail_on_none_does_not(
    tmp_path: Path, tinylib_manifest_text: str
) -> None:
    manifest = _small_suite(
        tmp_path,
        tinylib_manifest_text,
        '["check_tiny.py::test_passes", "check_tiny.py::test_regression"]',
    )
    out = tmp_path / "out"
    assert cli.main(["compat", "run", str(manifest), "--out", str(out)]) == 1
    (result_file,) = out.glob("tinylib-*.json")
    data = json.loads(result_file.read_text())
    assert data["verdicts"] == {"passed": 1, "regression": 1}
    assert data["reproduce"] == f"greenpatch compat run {manifest}"
    argv = ["compat", "run", str(manifest), "--out", str(out), "--fail-on", "none"]
    assert cli.main(argv) == 0


def test_relative_out_works_and_fail_on_not_run_ignores_regressions(
    tmp_path: Path, tinylib_manifest_text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _small_suite(
        tmp_path,
        tinylib_manifest_text,
        '["check_tiny.py::test_passes", "check_tiny.py::test_regression"]',
    )
    monkeypatch.chdir(tmp_path)
    argv = ["compat", "run", str(manifest), "--out", "rel-out", "--fail-on", "not-run"]
    assert cli.main(argv) == 0  # a regression, but the suite did run
    (result_file,) = (tmp_path / "rel-out").glob("tinylib-*.json")
    data = json.loads(result_file.read_text())
    assert data["verdicts"] == {"passed": 1, "regression": 1}


def test_only_plain_runs_one_mode(tmp_path: Path, tinylib_manifest_text: str) -> None:
    manifest = _small_suite(tmp_path, tinylib_manifest_text, '["check_tiny.py::test_passes"]')
    out = tmp_path / "out"
    assert cli.main(["compat", "run", str(manifest), "--out", str(out), "--only", "plain"]) == 0
    (result_file,) = out.glob("tinylib-*.json")
    data = json.loads(result_file.read_text())
    assert list(data["modes"]) == ["plain"]
    assert data["reproduce"].endswith("--only plain")


def test_two_suites_at_once_each_get_a_result(tmp_path: Path, tinylib_manifest_text: str) -> None:
    first = _small_suite(tmp_path, tinylib_manifest_text, '["check_tiny.py::test_passes"]')
    second = write_manifest(
        tmp_path,
        first.read_text().replace('name = "tinylib"', 'name = "tinylib2"'),
        name="second.toml",
    )
    out = tmp_path / "out"
    argv = ["compat", "run", str(first), str(second), "--out", str(out), "--jobs", "2"]
    assert cli.main(argv) == 0
    assert sorted(p.name.split("-")[0] for p in out.glob("*.json")) == ["tinylib", "tinylib2"]


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupt_stops_services_and_saves_an_incomplete_result(
    tmp_path: Path, tinylib_manifest_text: str, signum: int
) -> None:
    text = tinylib_manifest_text.replace("per_test_timeout = 4", "per_test_timeout = 120")
    if shutil.which("redis-server"):
        text += '\n[services.redis]\nenv = "REDIS_URL"\n'
    manifest = _small_suite(tmp_path, text, '["check_tiny.py::test_hangs_when_patched"]')
    out = tmp_path / "out"
    code = "import sys; from greenpatch.compat_tests.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["compat", "run", str(manifest), "--out", str(out), "--only", "patched"]
    process = subprocess.Popen([sys.executable, "-c", code, *argv], start_new_session=True)
    try:
        events = out / ".tinylib-0.1-py{}.{}.work".format(*sys.version_info[:2])
        events /= "patched-0.events.jsonl"
        _wait_for(lambda: events.exists() and '"start"' in events.read_text(), "the test to start")
        pid = json.loads(events.read_text().splitlines()[0])["pid"]
        process.send_signal(signum)
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            process.kill()
    (result_file,) = out.glob("tinylib-*.json")
    result = json.loads(result_file.read_text())
    assert result["incomplete"]
    assert any("interrupted" in note for note in result["notes"])
    # What the interrupted run saw is kept: it ran, and the test it was in is not "passed".
    assert result["modes"]["patched"]["ran"]
    assert [test["verdict"] for test in result["tests"]] == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the suite's pytest process is gone
    for note in result["notes"]:
        if note.startswith("service redis: "):
            assert not redis_ping(note.split()[2], timeout=0.5)


def test_missing_compat_extra_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ImportError
    assert cli.main(["compat", "list"]) == 2
    assert "pip install 'greenpatch[compat]'" in capsys.readouterr().err


def test_summary_shows_parametrized_ids_and_the_speed_ratio_without_hangs() -> None:
    from rich.console import Console

    from greenpatch.compat_tests.display import print_summary
    from greenpatch.reports import ModeSummary, Result, TestVerdict

    result = Result(
        suite="demo",
        library="demo",
        version="1.0",
        python="3.11.7",
        platform="x",
        greenpatch_version="0",
        modes={
            "plain": ModeSummary(mode="plain", ran=True, duration=10.0),
            "patched": ModeSummary(mode="patched", ran=True, duration=72.0, watchdog_seconds=60),
        },
        tests=[
            TestVerdict(
                nodeid="t.py::test_proxy[http_proxy-http]",
                verdict="regression",
                plain="passed",
                patched="hung",
                error="no report for 60 s: killed by the watchdog\nmore",
            )
        ],
    )
    console = Console(record=True, width=200)
    print_summary(console, [(result, Path("out/demo.json"))])
    text = console.export_text()
    assert "t.py::test_proxy[http_proxy-http]: no report for 60 s" in text
    assert "1.20" in text  # (72 - 60) / 10
    assert "60 s in hangs" in text


def test_compat_matrix_prints_tox_envs_and_a_github_matrix() -> None:
    import json
    import subprocess
    import sys

    def run(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "greenpatch", "compat", "matrix", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    from greenpatch.compat_tests.manifest import builtin_suites, load_manifest

    manifests = [load_manifest(path) for path in builtin_suites().values()]
    envs = run("--python", "3.12").split()
    assert envs == [f"compat-{m.name.replace('-', '_')}-py312" for m in manifests]
    assert "compat-redis-py312" in envs and "compat-requests-py312" in envs
    matrix = json.loads(run("--github", "--python", "3.11"))
    cells = {(cell["suite"], cell["version"], cell["toxenv"]) for cell in matrix["include"]}
    assert ("redis", "latest", "compat-redis-py311") in cells
    assert len(cells) == sum(len(m.matrix) for m in manifests)


def test_an_unwritable_cache_dir_is_one_line_and_exit_2_before_any_work(
    tmp_path: Path, tinylib_manifest_text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _small_suite(tmp_path, tinylib_manifest_text, '["check_tiny.py::test_passes"]')
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = tmp_path / "out"
    argv = ["compat", "run", str(manifest), "--out", str(out), "--cache-dir", str(blocker / "c")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("greenpatch compat: --cache-dir ")
    assert err.endswith(": not writable (Not a directory)\n")
    assert err.count("\n") == 1
    assert not list(out.glob("*.json"))  # no suite ran
