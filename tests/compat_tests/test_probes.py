"""Cooperation probes: a library that yields scores about N, one that blocks about 1.

These are behavioural checks with wide margins (cooperative means >= 0.8 * N,
blocking gives about 1), not timing benchmarks.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import greenpatch
from greenpatch.compat_tests.probes import (
    REDIS_PROBE,
    REQUESTS_PROBE,
    ProbeContext,
    load_callable,
    measure,
    run_probe,
)

PYTHON = sys.executable  # the project's virtualenv: greenpatch, requests and redis installed

USER_PROBES = '''
import greenpatch

blocking_sleep = greenpatch.original("time", "sleep")
calls = 0

def blocking(context):
    """A library that does its I/O without yielding to the hub."""
    blocking_sleep(context.delay)

def boom(context):
    raise RuntimeError("boom")

def fails_after_warm_up(context):
    global calls
    calls += 1
    if calls > 1:
        raise ConnectionResetError("connection reset by peer")

def hangs(context):
    with open("server_url.txt", "w") as file:
        file.write(context.http_url or "")
    blocking_sleep(3600)
'''


@pytest.fixture
def probe_dir(tmp_path: Path) -> Path:
    """A directory holding a user's probe module, used as the probe's working directory."""
    (tmp_path / "user_probes.py").write_text(textwrap.dedent(USER_PROBES))
    return tmp_path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    server_binary = shutil.which("redis-server")
    if server_binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    # No persistence files: a throw-away server on loopback.
    command = [server_binary, "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no"]
    server = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert server.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=20)


# -- through the subprocess, as the harness runs them ------------------------------------
def test_requests_probe_is_cooperative():
    pytest.importorskip("requests")
    result = run_probe(PYTHON, REQUESTS_PROBE, concurrency=10, delay=0.3)
    assert result["error"] is None
    assert result["cooperative"] is True
    assert result["factor"] >= 8.0
    assert len(result["latencies"]) == 10
    assert min(result["latencies"]) >= 0.29  # each call really waited for the slow server


def test_redis_probe_against_a_real_server_is_cooperative(redis_url):
    pytest.importorskip("redis")
    result = run_probe(
        PYTHON, REDIS_PROBE, concurrency=10, delay=0.3, service_urls={"redis": redis_url}
    )
    assert result["error"] is None
    assert result["cooperative"] is True
    assert result["factor"] >= 8.0
    assert min(result["latencies"]) >= 0.29  # BLPOP's float timeout was honoured


def test_blocking_probe_scores_about_one(probe_dir):
    result = run_probe(PYTHON, "user_probes:blocking", concurrency=5, delay=0.2, cwd=str(probe_dir))
    assert result["error"] is None
    assert result["factor"] < 2
    assert result["cooperative"] is False
    assert result["wall"] >= 0.9  # five calls, one after the other


def test_probe_that_raises_reports_the_error(probe_dir):
    result = run_probe(PYTHON, "user_probes:boom", concurrency=3, delay=0.1, cwd=str(probe_dir))
    assert result["cooperative"] is False
    assert "warm-up call failed: RuntimeError: boom" in result["error"]


def test_calls_failing_after_the_warm_up_are_counted(probe_dir):
    result = run_probe(
        PYTHON, "user_probes:fails_after_warm_up", concurrency=4, delay=0.1, cwd=str(probe_dir)
    )
    assert result["cooperative"] is False
    assert result["error"] == (
        "4 of 4 calls failed; the first: ConnectionResetError: connection reset by peer"
    )


def test_hanging_probe_is_killed_at_the_timeout_with_its_server(probe_dir):
    started = time.monotonic()
    # http is left to its default: a user's probe gets the slow HTTP server.
    result = run_probe(PYTHON, "user_probes:hangs", concurrency=2, timeout=4, cwd=str(probe_dir))
    assert time.monotonic() - started < 30
    assert result["cooperative"] is False
    assert "did not finish within 4 s and was killed" in result["error"]
    # The slow HTTP server the probe started went down with it.
    url = (probe_dir / "server_url.txt").read_text()
    assert url.startswith("http://127.0.0.1:")
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            break
        assert time.monotonic() < deadline, "the slow HTTP server outlived its probe"
        time.sleep(0.05)


def test_redis_probe_without_a_url_says_what_is_missing():
    result = run_probe(PYTHON, REDIS_PROBE, concurrency=2, delay=0.1)
    assert result["cooperative"] is False
    assert result["error"] == (
        "redis_probe needs a Redis URL: run the probe with --service redis=URL"
    )


def test_missing_interpreter_is_reported_not_raised(tmp_path):
    result = run_probe(str(tmp_path / "no-python"), REQUESTS_PROBE, concurrency=2)
    assert result["cooperative"] is False
    assert "could not start" in result["error"]


def test_unknown_probe_module_is_reported():
    result = run_probe(PYTHON, "no_such_module_xyz:probe", concurrency=2, delay=0.1)
    assert result["cooperative"] is False
    assert "ModuleNotFoundError" in result["error"]


# -- the measurement itself, in this process ---------------------------------------------
def test_measure_counts_overlapping_waits_as_concurrency():
    context = ProbeContext(delay=0.1)
    result = measure(lambda ctx: greenpatch.sleep(ctx.delay), context, 10, join_timeout=30)
    assert result["error"] is None
    assert 8.0 <= result["factor"] <= 10.5
    assert result["cooperative"] is True


def test_measure_sees_calls_that_block_the_thread_as_serial():
    # This process is not patched: time.sleep blocks the OS thread and the hub.
    context = ProbeContext(delay=0.05)
    result = measure(lambda ctx: time.sleep(ctx.delay), context, 4, join_timeout=30)
    assert result["factor"] < 1.5
    assert result["cooperative"] is False


@pytest.mark.parametrize("spec", ["no_colon", ":fn", "json:", "json:nonexistent_name"])
def test_load_callable_rejects_bad_specs(spec):
    with pytest.raises((ValueError, AttributeError)):
        load_callable(spec)
