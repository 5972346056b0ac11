"""docs/tutorial-own-library.md works as written: its shell blocks are run, in
order, in a copy of the tutorial project, and its manifest and probe are the
project's files.  The page cannot drift from what the tool does."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import rich  # noqa: F401
except ImportError:  # pragma: no cover - the compat extra is not installed
    pytest.skip("greenpatch compat needs the compat extra (rich)", allow_module_level=True)

from .conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "tutorial-own-library.md"
PROJECT = FIXTURES / "tutorial_lib"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[str]:
    return [body for lang, body in _FENCE.findall(PAGE.read_text()) if lang == language]


def test_the_page_shows_the_projects_manifest_and_probe_as_they_are() -> None:
    (manifest,) = blocks("toml")
    assert manifest == (PROJECT / "greenpatch-suite.toml").read_text()
    (probe,) = blocks("python")
    assert probe == (PROJECT / "tutorial_lib_probe.py").read_text()


def test_every_shell_block_of_the_page_runs_and_the_library_passes(tmp_path: Path) -> None:
    project = tmp_path / "tutorial_lib"
    # Without the fixture's conftest.py: it only keeps greenpatch's own test run
    # out of the project, and a reader's project has no such file.
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    env = dict(os.environ)
    # `python` and `greenpatch` are this environment's, as after a pip install.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["GREENPATCH_CACHE_DIR"] = str(tmp_path / "cache")
    shell_blocks = blocks("sh")
    assert len(shell_blocks) >= 3
    outputs = []
    for block in shell_blocks:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{block}\n-> {done.returncode}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    text = "\n".join(outputs)
    (result_file,) = (project / "reports").glob("tutorial_lib-0.1-py*.json")
    result = json.loads(result_file.read_text())
    assert result["verdicts"] == {"passed": 2}
    assert result["probe"]["cooperative"] is True
    assert not result["incomplete"]
    assert f"tutorial_lib: done: PASS: {result_file}" in text
    assert "cooperative (" in text
    assert (project / "compat.md").read_text().strip()
    assert "tutorial_lib: patched run finished" in (project / "compat.log").read_text()
