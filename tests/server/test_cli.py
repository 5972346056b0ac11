"""``greenpatch serve``'s implementation (server/cli.py), run as a real process."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from greenpatch.server import cli

APP = """
import greenpatch

PATCHED_AT_IMPORT = greenpatch.is_patched("socket")

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"patched" if PATCHED_AT_IMPORT else b"not patched"]
"""


def test_serve_patches_first_serves_the_app_and_stops_on_sigterm(tmp_path: Path):
    (tmp_path / "hello_app.py").write_text(APP)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-m", "greenpatch.server.cli", "hello_app:app", "--bind", "127.0.0.1:0"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        url = f"http://127.0.0.1:{match.group(1)}/"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
        assert body == "patched"  # the stdlib was patched before the app was imported
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_load_app_explains_a_bad_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="module:attribute"):
        cli.load_app("no_colon")


def test_run_reports_an_app_that_cannot_be_imported(capsys: pytest.CaptureFixture[str]):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["surely_missing_module_xyz:app", "--no-patch"])
    assert cli.run(args) == 2
    assert "cannot load" in capsys.readouterr().err
