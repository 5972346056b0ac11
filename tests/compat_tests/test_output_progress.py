"""Progress when stdout is not a terminal (a CI log): lines, never silence."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
from pathlib import Path

import pytest

try:
    import rich  # noqa: F401
except ImportError:  # pragma: no cover - the compat extra is not installed
    pytest.skip("greenpatch compat needs the compat extra (rich)", allow_module_level=True)

from greenpatch.compat_tests.display import LogProgressListener

from .conftest import write_manifest


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_listener_writes_a_line_per_phase_and_the_counts_on_each_tick() -> None:
    out, clock = io.StringIO(), FakeClock()
    listener = LogProgressListener(out, interval=10.0, clock=clock)
    listener.add("demo")
    listener.phase("demo", "fetching tests")
    listener.phase("demo", "plain run")
    listener.collected("demo", "plain", 4)
    listener.outcome("demo", "plain", "t::a", "passed")
    listener.outcome("demo", "plain", "t::b", "failed")
    listener.outcome("demo", "plain", "t::c", "hung")
    clock.now += 12
    listener.tick()
    # A resumed pytest (after the hang) collects only what is left.
    listener.collected("demo", "plain", 1)
    listener.outcome("demo", "plain", "t::d", "passed")
    clock.now += 3
    listener.phase("demo", "patched run")
    listener.finish("demo", "done: PASS: /r/demo.json")
    listener.tick()  # a finished suite gets no more lines
    assert out.getvalue().splitlines() == [
        "[     0 s] demo: fetching tests",
        "[     0 s] demo: plain run",
        "[    12 s] demo: plain run: 3/4 tests done, 1 passed, 2 failed",
        "[    15 s] demo: plain run finished: 4/4 tests done, 2 passed, 2 failed",
        "[    15 s] demo: patched run",
        "[    15 s] demo: patched run finished: 0/? tests done, 0 passed, 0 failed",
        "[    15 s] demo: done: PASS: /r/demo.json",
    ]


class _Lines(io.StringIO):
    """A stream that signals each line written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = threading.Semaphore(0)

    def write(self, text: str) -> int:
        count = super().write(text)
        for _ in range(text.count("\n")):
            self.written.release()
        return count


def test_the_heartbeat_thread_writes_progress_while_nothing_else_happens() -> None:
    out = _Lines()
    listener = LogProgressListener(out, interval=0.01)
    with listener:
        listener.add("demo")
        listener.phase("demo", "patched run")
        assert out.written.acquire(timeout=60)  # the phase line
        # No event at all (a test that hangs): the heartbeat still reports.
        assert out.written.acquire(timeout=60)
    lines = out.getvalue().splitlines()
    assert lines[1].endswith("demo: patched run: 0/? tests done, 0 passed, 0 failed")


def test_a_run_whose_stdout_is_not_a_terminal_logs_each_phase_and_run(
    tmp_path: Path, tinylib_manifest_text: str
) -> None:
    text = tinylib_manifest_text.replace(
        'tests = ["check_tiny.py"]',
        'tests = ["check_tiny.py::test_passes", "check_tiny.py::test_fails_both"]',
    )
    manifest = write_manifest(tmp_path, text)
    command = [sys.executable, "-m", "greenpatch", "compat", "run", str(manifest)]
    out = subprocess.run(
        [*command, "--out", str(tmp_path / "out")],
        capture_output=True,  # stdout a pipe, as in a CI job
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for phase in ("fetching tests", "preparing environment", "plain run", "patched run"):
        assert any(line.endswith(f"tinylib: {phase}") for line in lines), out.stdout
    assert any(
        "tinylib: plain run finished: 2/2 tests done, 1 passed, 1 failed" in line for line in lines
    )
    result = tmp_path / "out" / "tinylib-0.1-py{}.{}.json".format(*sys.version_info[:2])
    # No probe in tinylib's manifest: no regression, but not a pass either.
    done = f"tinylib: done: NO REGRESSION, cooperation not measured: {result}"
    assert any(line.endswith(done) for line in lines), out.stdout
    assert f"result: {result}" in lines
