"""Faults of the harness itself, with the real machinery: real pytest subprocesses,
a real redis-server started by the harness, the real ``greenpatch compat`` CLI.

The fixture suite ``fixtures/faultlib`` stops at a known point and writes a
marker file there (pids included); each test waits for that marker -- never for
a guessed delay -- then kills something: the suite's pytest process, the
redis-server, the harness itself (Ctrl-C), or a cache builder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from greenpatch.compat_tests.harness import HarnessOptions, SuiteListener, run_suite
from greenpatch.compat_tests.manifest import load_manifest
from greenpatch.reports import Result, TestVerdict, read_result

from .conftest import FIXTURES, TINYLIB, write_manifest

FAULTLIB = FIXTURES / "faultlib"
REPO = Path(__file__).resolve().parents[2]
needs_redis = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed"
)


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (dead, waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _faultlib_manifest(directory: Path, extra: str = "", tests: str | None = None) -> Path:
    text = (FAULTLIB / "suite.toml").read_text().replace('path = "."', f'path = "{FAULTLIB}"')
    if tests is not None:
        text = text.replace('tests = ["check_faults.py"]', f"tests = {tests}")
    path = directory / "faultlib.toml"
    path.write_text(text + extra)
    return path


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fixture suite's marker directory, and a clean environment for it."""
    folder = tmp_path / "state"
    folder.mkdir()
    monkeypatch.setenv("FAULTLIB_DIR", str(folder))
    for name in ("REDIS_URL", "FAULTLIB_PAUSE_IN", "FAULTLIB_PAUSE_AFTER", "FAULTLIB_CHILD"):
        monkeypatch.delenv(name, raising=False)
    return folder


class _AtMarker(threading.Thread):
    """When the fixture suite writes ``marker``, do ``action(marker's JSON)``."""

    def __init__(
        self,
        marker: Path,
        action: Callable[[dict[str, Any]], None],
        after: threading.Event | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.marker, self.action, self.after = marker, action, after
        self.info: dict[str, Any] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            _wait_for(self.marker.exists, f"{self.marker.name}", timeout=90)
            if self.after is not None:
                _wait_for(self.after.is_set, "the harness to record what came before")
            self.info = json.loads(self.marker.read_text())
            self.action(self.info)
        except BaseException as exc:  # reported by the test, in its own thread
            self.error = exc

    def finish(self) -> dict[str, Any]:
        self.join(30)
        if self.error is not None:
            raise self.error
        return self.info


def _by_name(result: Result) -> dict[str, TestVerdict]:
    return {test.nodeid.rsplit("::", 1)[-1]: test for test in result.tests}


# -- 1. kill -9 of the suite's pytest process -------------------------------------
@pytest.mark.timeout(120)
def test_kill_9_in_a_test_costs_that_test_and_the_run_resumes(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTLIB_PAUSE_IN", "test_pauses")
    monkeypatch.setenv("FAULTLIB_CHILD", "1")  # a server the suite started, say
    killer = _AtMarker(state / "in-test.json", lambda info: os.kill(info["pid"], signal.SIGKILL))
    killer.start()
    manifest = load_manifest(_faultlib_manifest(tmp_path))
    result, path = run_suite(manifest, HarnessOptions(out_dir=tmp_path / "out"))
    info = killer.finish()
    tests = _by_name(result)
    for name in ("test_one", "test_two", "test_three", "test_four"):
        assert tests[name].verdict == "passed", name
    killed = tests["test_pauses"]
    assert killed.patched == "crashed"
    assert "killed by SIGKILL" in (killed.error or "")
    # The re-run (which does not pause) shows it was the kill, not the patch.
    assert killed.rerun == {"plain": "passed", "patched": "passed"}
    assert killed.verdict == "flaky"
    assert result.modes["patched"].processes == 2
    assert not result.incomplete
    assert read_result(path) == result
    # The whole process group went: the suite's own child did not outlive pytest.
    _wait_for(lambda: _gone(info["child_pid"]), "the suite's child process to be gone")


@pytest.mark.timeout(120)
def test_kill_9_between_tests_keeps_what_was_seen_and_marks_the_rest_not_run(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTLIB_PAUSE_AFTER", "test_two")
    killer = _AtMarker(
        state / "between-tests.json", lambda info: os.kill(info["pid"], signal.SIGKILL)
    )
    killer.start()
    manifest = load_manifest(_faultlib_manifest(tmp_path))
    result, path = run_suite(manifest, HarnessOptions(out_dir=tmp_path / "out"))
    killer.finish()
    tests = _by_name(result)
    assert tests["test_one"].verdict == tests["test_two"].verdict == "passed"
    for name in ("test_pauses", "test_three", "test_four"):
        assert (tests[name].plain, tests[name].patched) == ("passed", None), name
        assert tests[name].verdict == "skipped", name
        assert tests[name].reason == "did not run in the patched run"
    assert result.incomplete
    assert any("patched run stopped early" in n and "SIGKILL" in n for n in result.notes)
    assert any("outside any test" in error for error in result.modes["patched"].errors)
    assert read_result(path) == result


# -- 2. the redis-server the harness started dies mid-suite -----------------------
class _HeardOutcome(SuiteListener):
    """Set ``heard`` once the harness has recorded ``nodeid``'s outcome in ``mode``."""

    def __init__(self, mode: str, name: str) -> None:
        self.mode, self.name = mode, name
        self.heard = threading.Event()

    def outcome(self, suite: str, mode: str, nodeid: str, outcome: str) -> None:
        if mode == self.mode and nodeid.endswith("::" + self.name):
            self.heard.set()


def _kill_and_wait(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: _gone(pid), f"pid {pid} to die")


@needs_redis
@pytest.mark.timeout(120)
def test_redis_killed_mid_suite_is_reported_and_nothing_is_judged_after_it(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAULTLIB_MODE", "plain")
    monkeypatch.setenv("FAULTLIB_PAUSE_IN", "test_pauses")

    def kill_redis(info: dict[str, Any]) -> None:
        _kill_and_wait(info["redis_pid"])
        (state / "release").write_text("")  # the paused test goes on, redis gone

    # Killed once the harness has taken test_two's result with redis alive:
    # results reported after it was last seen alive are dropped, not judged.
    listener = _HeardOutcome("plain", "test_two")
    killer = _AtMarker(state / "in-test.json", kill_redis, after=listener.heard)
    killer.start()
    path = _faultlib_manifest(tmp_path, extra='\n[services.redis]\nenv = "REDIS_URL"\n')
    options = HarnessOptions(out_dir=tmp_path / "out")
    result, written = run_suite(load_manifest(path), options, listener)
    killer.finish()
    (lost,) = [note for note in result.notes if "died" in note]
    assert "service redis" in lost
    assert "killed by SIGKILL" in lost
    assert "plain run" in lost
    assert result.incomplete
    # The patched run did not start against a dead server: no false regressions.
    assert not result.modes["patched"].ran
    tests = _by_name(result)
    assert set(tests) == {"test_one", "test_two"}  # the paused test ended after the loss
    for test in tests.values():
        assert (test.plain, test.patched, test.verdict) == ("passed", None, "skipped")
    assert not result.regressions()
    assert read_result(written) == result


# -- 3. an unwritable --out -------------------------------------------------------
_TRAP = '#!/bin/sh\ntouch "$GREENPATCH_TRAP_DIR/ran-$(basename "$0")"\nexit 1\n'


def _cli_that_must_not_work(base: Path) -> tuple[Path, dict[str, str]]:
    """A manifest that would download, build and start redis; and an environment
    whose PATH turns each such step into a marker file."""
    manifest = base / "heavy.toml"
    manifest.write_text(
        '[suite]\ndistribution = "faultlib-not-on-the-index"\nversion = "==1.0"\n\n'
        '[environment]\nkind = "venv"\n\n[services.redis]\nenv = "REDIS_URL"\n'
    )
    trap_bin, traps = base / "bin", base / "traps"
    trap_bin.mkdir()
    traps.mkdir()
    for name in ("redis-server", "uv", "git", "pip"):
        (trap_bin / name).write_text(_TRAP)
        (trap_bin / name).chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{trap_bin}{os.pathsep}{env['PATH']}"
    env["GREENPATCH_TRAP_DIR"] = str(traps)
    env["PIP_NO_INDEX"] = "1"  # were pip to run after all: no network
    return manifest, env


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A scratch directory another user can reach (pytest's tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="greenpatch-faults-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        for path in base.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(base)


def _unprivileged() -> list[str]:
    """Run as nobody when we are root (root writes into a read-only directory)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root without setpriv: cannot make a directory unwritable")
    prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    # nobody must be able to run this interpreter (a pyenv build under /root, with
    # its libpython there, is not).
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import greenpatch"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot run {sys.executable}: {probe.stderr.strip()[:200]}")
    return prefix


@pytest.mark.parametrize("blocker", ["file-in-the-way", "read-only-parent", "read-only-out"])
def test_unwritable_out_is_one_error_before_any_download_build_or_service(
    world_readable_dir: Path, blocker: str
) -> None:
    base = world_readable_dir
    manifest, env = _cli_that_must_not_work(base)
    prefix: list[str] = []
    if blocker == "file-in-the-way":
        (base / "file").write_text("")
        out = base / "file" / "reports"
    else:
        (base / "locked").mkdir(mode=0o555)
        out = base / "locked" / "reports" if blocker == "read-only-parent" else base / "locked"
        prefix = _unprivileged()
    cache = base / "cache"
    command = [*prefix, sys.executable, "-m", "greenpatch", "compat", "run", str(manifest)]
    command += ["--out", str(out), "--cache-dir", str(cache)]
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 2, done.stderr
    # One line: what, where and why -- no traceback.
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"greenpatch compat: --out {out}: not writable ("), done.stderr
    assert not cache.exists()  # no source fetched, no environment built
    assert not list((base / "traps").iterdir())  # no redis-server, uv, git or pip ran
    assert not out.exists() or not list(out.iterdir())


# -- 4. Ctrl-C of `greenpatch compat run` -----------------------------------------
def _redis_servers_on(port: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"redis-server") and port.encode() in argv:
            if not _gone(int(proc.name)):
                found.append(int(proc.name))
    return found


@needs_redis
@pytest.mark.timeout(120)
@pytest.mark.parametrize("presses", [1, 2], ids=["ctrl-c", "ctrl-c-twice"])
def test_ctrl_c_stops_redis_and_saves_an_incomplete_result(
    tmp_path: Path, state: Path, presses: int
) -> None:
    manifest = _faultlib_manifest(tmp_path, extra='\n[services.redis]\nenv = "REDIS_URL"\n')
    out = tmp_path / "out"
    env = dict(os.environ, FAULTLIB_MODE="plain", FAULTLIB_PAUSE_IN="test_pauses")
    command = [sys.executable, "-m", "greenpatch", "compat", "run", str(manifest)]
    command += ["--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        marker = state / "in-test.json"
        _wait_for(marker.exists, "the suite to reach its pause")
        info = json.loads(marker.read_text())
        process.send_signal(signal.SIGINT)
        if presses == 2:
            # Again once the first has been acted on (the suite's pytest is
            # killed first), while the services are being stopped.
            _wait_for(lambda: _gone(info["pid"]), "the suite's pytest to be killed")
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err.decode(errors="replace")
    assert _gone(info["pid"])
    assert _gone(info["redis_pid"])
    (result_file,) = out.glob("faultlib-*.json")
    result = read_result(result_file)
    (service_note,) = [n for n in result.notes if n.startswith("service redis: ")]
    assert _redis_servers_on(service_note.split(":")[3].split("/")[0]) == []
    assert result.incomplete
    assert any("interrupted" in note for note in result.notes)
    # Seen passing plain, never run patched: kept, and never reported "passed".
    tests = _by_name(result)
    assert set(tests) == {"test_one", "test_two"}
    for test in tests.values():
        assert (test.plain, test.patched, test.verdict) == ("passed", None, "skipped")
    assert not result.modes["patched"].ran


# -- 5. two runs sharing the cache ------------------------------------------------
BUILDER = textwrap.dedent(
    """
    import json, os, shutil, subprocess, sys, time, venv
    from pathlib import Path
    from greenpatch.compat_tests import environment, sources
    from greenpatch.compat_tests.manifest import load_manifest

    kind, manifest_path, cache, state = sys.argv[1:5]
    state = Path(state)

    def log(text):
        with open(state / "log", "a") as stream:
            stream.write(f"{text} {os.getpid()}\\n")

    def wait_for_release():
        (state / f"busy-{os.getpid()}").write_text("")
        give_up = time.monotonic() + 60
        while not (state / "release").exists():
            if time.monotonic() > give_up:
                sys.exit("never released")
            time.sleep(0.02)

    if kind == "env":
        def build(location, interpreter, wanted, no_deps, **options):
            # The real build installs from the index; this one makes a real
            # virtualenv without packages, and stops half-way when asked.
            log("build-start")
            location.mkdir(parents=True)
            (location / f"from-{os.getpid()}").write_text("")
            wait_for_release()
            venv.create(location, with_pip=False, symlinks=True)
            log("build-end")

        environment._build = build
        source = sources.Source(root=Path(manifest_path).parent, version="0.1", origin="test")
        env = environment.prepare_environment(
            load_manifest(manifest_path), source, None, Path(cache)
        )
        print(json.dumps({"where": env.location, "reused": env.reused}))
    else:
        real_run = subprocess.run

        def run(command, *args, **kwargs):
            if command[1:4] == ["-m", "pip", "download"]:
                log("download-start")
                wait_for_release()
                target = command[command.index("-d") + 1]
                shutil.copy(state / "demo-1.0.tar.gz", target)
                log("download-end")
                return subprocess.CompletedProcess(command, 0, "", "")
            return real_run(command, *args, **kwargs)

        subprocess.run = run
        source = sources.prepare_source(load_manifest(manifest_path), None, Path(cache))
        print(json.dumps({"where": str(source.root), "reused": "cached" in source.origin}))
    """
)


class _Builder:
    """One harness process preparing a cache entry (BUILDER above)."""

    def __init__(self, kind: str, manifest: Path, cache: Path, state: Path) -> None:
        self.err_path = state / f"stderr-{id(self)}"
        self.err = open(self.err_path, "wb")
        script = state / "builder.py"
        script.write_text(BUILDER)
        self.process = subprocess.Popen(
            [sys.executable, str(script), kind, str(manifest), str(cache), str(state)],
            stdout=subprocess.PIPE,
            stderr=self.err,
        )

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def outcome(self) -> dict[str, Any]:
        out, _ = self.process.communicate(timeout=120)
        self.err.close()
        assert self.process.returncode == 0, self.stderr()
        data: dict[str, Any] = json.loads(out)
        return data


def _env_manifest(tmp_path: Path) -> Path:
    text = (TINYLIB / "suite.toml").read_text().replace('kind = "current"', 'kind = "venv"')
    return write_manifest(tmp_path, text)


def _log(state: Path) -> list[str]:
    path = state / "log"
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.timeout(120)
def test_two_runs_build_one_environment_once_the_second_waits_and_reuses_it(
    tmp_path: Path, state: Path
) -> None:
    manifest, cache = _env_manifest(tmp_path), tmp_path / "cache"
    first = _Builder("env", manifest, cache, state)
    _wait_for(lambda: (state / f"busy-{first.process.pid}").exists(), "the first build")
    second = _Builder("env", manifest, cache, state)
    waiting = f"waiting for another greenpatch run (pid {first.process.pid})"
    _wait_for(lambda: waiting in second.stderr(), "the second run to wait for the lock")
    (state / "release").write_text("")
    built, reused = first.outcome(), second.outcome()
    assert _log(state) == ["build-start", "build-end"]  # built once, never twice at once
    assert built == {"where": reused["where"], "reused": False}
    assert reused["reused"] is True
    where = Path(built["where"])
    assert (where / ".greenpatch-env.json").exists()
    assert (where / "bin" / "python").exists()


@pytest.mark.timeout(120)
def test_environment_half_built_by_a_killed_run_is_detected_and_rebuilt(
    tmp_path: Path, state: Path
) -> None:
    manifest, cache = _env_manifest(tmp_path), tmp_path / "cache"
    killed = _Builder("env", manifest, cache, state)
    _wait_for(lambda: (state / f"busy-{killed.process.pid}").exists(), "the first build")
    killed.process.kill()  # SIGKILL mid-build: the kernel drops its lock
    killed.process.wait()
    killed.err.close()
    (state / "release").write_text("")
    rebuilt = _Builder("env", manifest, cache, state)
    outcome = rebuilt.outcome()
    assert "removing half-built environment" in rebuilt.stderr()
    assert "waiting" not in rebuilt.stderr()
    assert _log(state) == ["build-start", "build-start", "build-end"]
    where = Path(outcome["where"])
    assert not (where / f"from-{killed.process.pid}").exists()
    assert (where / f"from-{rebuilt.process.pid}").exists()
    assert (where / ".greenpatch-env.json").exists()


@pytest.mark.timeout(120)
def test_two_runs_fetch_one_sdist_once_and_neither_reads_it_half_unpacked(
    tmp_path: Path, state: Path
) -> None:
    tree = tmp_path / "sdist" / "demo-1.0"
    (tree / "tests").mkdir(parents=True)
    (tree / "tests" / "test_x.py").write_text("def test_x(): pass\n")
    with tarfile.open(state / "demo-1.0.tar.gz", "w:gz") as bundle:
        bundle.add(tree, arcname="demo-1.0")
    manifest = tmp_path / "demo.toml"
    manifest.write_text("[suite]\ndistribution = 'demo'\nversion = '==1.0'\n")
    cache = tmp_path / "cache"
    first = _Builder("sdist", manifest, cache, state)
    _wait_for(lambda: (state / f"busy-{first.process.pid}").exists(), "the first download")
    second = _Builder("sdist", manifest, cache, state)
    _wait_for(lambda: "waiting for another" in second.stderr(), "the second run to wait")
    (state / "release").write_text("")
    fetched, reused = first.outcome(), second.outcome()
    assert _log(state) == ["download-start", "download-end"]
    assert fetched == {"where": reused["where"], "reused": False}
    assert reused["reused"] is True
    assert (Path(reused["where"]) / "tests" / "test_x.py").exists()
