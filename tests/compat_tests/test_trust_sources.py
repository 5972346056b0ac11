"""Issue 13, items 1 and 2: the harness tests the trees as they are now.

1. A library given by path is installed into a cached environment; edit the
   library and run again: the run must test the edited library, and the result
   says which tree it tested (path and content digest).
2. Two checkouts of greenpatch sharing one cache, running at once: each run
   tests the greenpatch that launched it, for the whole run, and records it.

Environments are built offline (fixtures/trust/offline_build.py): a real
virtualenv, the library installed as a copy, as pip would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import greenpatch
from greenpatch.compat_tests import environment
from greenpatch.compat_tests.harness import HarnessOptions, run_suite
from greenpatch.compat_tests.manifest import load_manifest
from greenpatch.reports import read_result

from .conftest import FIXTURES

TRUST = FIXTURES / "trust"
sys.path.insert(0, str(TRUST))
from offline_build import offline_build  # noqa: E402

FIXED = "def add(a, b):\n    return a + b\n"
BROKEN = "def add(a, b):\n    return a - b\n"


def _library(root: Path, code: str, test: str) -> Path:
    """A src-layout library: the tests can only import it from the environment."""
    (root / "src" / "trustlib").mkdir(parents=True)
    (root / "src" / "trustlib" / "__init__.py").write_text(code)
    (root / "tests").mkdir()
    (root / "tests" / "test_trustlib.py").write_text(test)
    (root / "pyproject.toml").write_text("[project]\nname = 'trustlib'\nversion = '1.4'\n")
    return root


def _manifest(directory: Path, env: str = "") -> Path:
    path = directory / "suite.toml"
    path.write_text(
        "[suite]\ndistribution = 'trustlib'\n"
        "[source]\nkind = 'path'\npath = 'lib'\ntests = ['tests']\n"
        f"[environment]\nrequirements = []\n{env}"
        "[pytest]\nargs = ['-q', '-p', 'no:cacheprovider']\nper_test_timeout = 120\n"
    )
    return path


def test_an_edited_path_library_is_the_library_tested(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(environment, "_build", offline_build)
    test = "from trustlib import add\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    lib = _library(tmp_path / "lib", FIXED, test)
    manifest = load_manifest(_manifest(tmp_path))
    # --version is asked for, but a tree is the version its metadata says.
    options = HarnessOptions(out_dir=tmp_path / "out", cache_dir=tmp_path / "cache", version="==9")

    first, _ = run_suite(manifest, options)
    assert first.modes["plain"].counts == {"passed": 1}

    (lib / "src" / "trustlib" / "__init__.py").write_text(BROKEN)  # the fix is removed
    second, path = run_suite(manifest, options)
    assert second.modes["plain"].counts == {"failed": 1}, "the stale copy was tested"
    assert second.modes["patched"].counts == {"failed": 1}
    assert first.version == second.version == "1.4"

    # The result names the tree it tested, and its state.
    assert first.source is not None and second.source is not None
    assert first.source["kind"] == second.source["kind"] == "path"
    assert first.source["location"] == second.source["location"] == str(lib)
    assert first.source["digest"] != second.source["digest"]
    assert read_result(path).source == second.source


def _copy_of_greenpatch(target: Path) -> Path:
    """A second checkout: this source tree (with its built extension), elsewhere."""
    src = Path(greenpatch.__file__).resolve().parent.parent
    # Every package of the checkout's src: pyproject.toml declares the pytest
    # plugin's entry point (greenpatch_pytest), which pytest loads in every run.
    for package in ("greenpatch", "greenpatch_pytest"):
        shutil.copytree(
            src / package,
            target / "src" / package,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copy(src.parent / "pyproject.toml", target / "pyproject.toml")
    return target / "src"


RECORDING_TEST = """\
import os
import pathlib
import time

import greenpatch


def test_waits_for_the_other_run():
    # Run A holds here until run B has prepared its environment, so that A's
    # patched run starts after anything B did to a shared environment.
    wait = os.environ.get("GP_WAIT_FOR")
    deadline = time.monotonic() + 100
    while wait and not os.path.exists(wait):
        assert time.monotonic() < deadline, "the other run never got its environment"
        time.sleep(0.05)


def test_records_its_greenpatch():
    record = pathlib.Path(os.environ["GP_RECORD"], f"{os.getpid()}.txt")
    record.write_text(os.path.dirname(os.path.realpath(greenpatch.__file__)))
"""


def test_two_checkouts_sharing_a_cache_each_test_their_own_greenpatch(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    _library(suite / "lib", FIXED, RECORDING_TEST)
    manifest = _manifest(suite)
    cache = tmp_path / "cache"
    runs = {}
    for name in ("a", "b"):
        src = _copy_of_greenpatch(tmp_path / f"checkout-{name}")
        record = tmp_path / f"records-{name}"
        record.mkdir()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(GREENPATCH_CACHE_DIR=str(cache), GP_RECORD=str(record))
        if name == "a":
            env["GP_WAIT_FOR"] = str(tmp_path / "ready-b")
        command = [sys.executable, str(TRUST / "launch.py"), str(src), str(manifest)]
        command += [str(tmp_path / f"out-{name}"), str(tmp_path / f"ready-{name}")]
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        runs[name] = (src, record, process)
    for name, (src, record, process) in runs.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        result = read_result(stdout.strip().splitlines()[-1])
        own = str(src / "greenpatch")
        assert result.modes["patched"].counts == {"passed": 2}
        seen = {path.read_text() for path in record.iterdir()}
        # Both runs (plain and patched) imported this checkout's greenpatch ...
        assert seen == {own}, f"run {name} tested {seen}"
        # ... and the result says which one it was.
        assert result.greenpatch_path == own
