"""Mistakes a user will make on the command line: one line, exit 2, before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import greenpatch
import greenpatch.server.cli
from greenpatch import cli


def greenpatch_command(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "greenpatch", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def _no_work(*args: object, **kwargs: object) -> None:
    raise AssertionError("work started despite the usage error")


def test_version_prints_the_version() -> None:
    out = greenpatch_command("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"greenpatch {greenpatch.__version__}"


@pytest.mark.parametrize("bind", ["nonsense", "127.0.0.1:http", "localhost:70000", "8000"])
def test_serve_with_a_malformed_bind_is_one_line_and_exit_2(
    bind: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before the patch, before the application is imported, before a socket.
    monkeypatch.setattr(greenpatch.server.cli, "run", _no_work)
    assert cli.main(["serve", "--bind", bind, "hello:app"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"greenpatch serve: --bind {bind!r}: expected HOST:PORT, port 0 to 65535 "
        "(e.g. 127.0.0.1:8000)\n"
    )


def test_serve_with_a_malformed_bind_from_the_shell(tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text("def app(environ, start_response):\n    return []\n")
    out = greenpatch_command("serve", "--bind", "nonsense", "hello:app", cwd=tmp_path)
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("module", ["nosuchmodule_gp", "json.nosuchmodule_gp"])
def test_run_of_a_missing_module_is_one_line_and_exit_2(module: str, tmp_path: Path) -> None:
    out = greenpatch_command("run", "-m", module, "--flag", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        f"greenpatch run: -m {module}: no module named {module!r} (sys.path[0] is {tmp_path})"
    ]


def test_run_of_a_missing_module_patches_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # run -m puts the cwd first
    monkeypatch.setattr(greenpatch, "patch_all", _no_work)
    assert cli.main(["run", "-m", "nosuchmodule_gp"]) == 2
    assert "no module named 'nosuchmodule_gp'" in capsys.readouterr().err


def test_run_of_a_module_in_the_current_directory_still_works(tmp_path: Path) -> None:
    (tmp_path / "here_gp.py").write_text(
        "import greenpatch\nprint(greenpatch.is_patched('socket'))\n"
    )
    out = greenpatch_command("run", "-m", "here_gp", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
