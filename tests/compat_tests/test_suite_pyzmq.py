"""The built-in pyzmq suite: its manifest loads and names a probe that imports;
the suite's pytest plugin lets the tests import the installed pyzmq from the
sdist's root; the probe's slow ROUTER answers requests together; the probe
cooperates with the zmq plugin and scores about 1 without it (seconds, loopback
only).  The real run of the suite is marked ``compat`` (about two minutes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from greenpatch.compat_tests.harness import HarnessOptions, run_suite
from greenpatch.compat_tests.library_probes import pyzmq as pyzmq_probe
from greenpatch.compat_tests.manifest import builtin_suites, resolve_suite
from greenpatch.compat_tests.probes import load_callable, run_probe

PROBE = "greenpatch.compat_tests.library_probes.pyzmq:probe"
PLUGIN = "greenpatch.compat_tests.library_probes.pyzmq"


def test_the_manifest_is_built_in_and_names_an_importable_probe() -> None:
    assert "pyzmq" in builtin_suites()
    manifest = resolve_suite("pyzmq")
    assert manifest.distribution == "pyzmq"
    assert manifest.source_kind == "sdist" and manifest.tests == ("tests",)
    assert manifest.services == ()
    assert manifest.pytest_args[:2] == ("-p", PLUGIN)
    assert manifest.env == {"PYTHONSAFEPATH": "1"}
    assert manifest.probe is not None and manifest.probe.callable == PROBE
    assert manifest.probe.concurrency == 20 and manifest.probe.delay == 0.3
    assert manifest.probe.blocks is None  # the zmq plugin makes it cooperate
    assert load_callable(manifest.probe.callable) is pyzmq_probe.probe


def test_the_only_deselection_is_a_test_racy_plain_and_devices_run() -> None:
    # The device tests (zmq.proxy, device, monitored_queue in a green thread)
    # were deselected until the zmq plugin made devices cooperative: they run.
    manifest = resolve_suite("pyzmq")
    assert [entry.id for entry in manifest.deselect] == [
        "tests/test_log.py::TestPubLog::test_blank_root_topic"
    ]
    assert manifest.deselect[0].reason.startswith("racy plain: ")
    assert manifest.expected == ()


# -- the suite's pytest plugin: the installed pyzmq, not the sdist's sources -------------
@pytest.fixture
def sdist_like_tree(tmp_path: Path) -> Path:
    """A tree laid out as pyzmq's sdist: an unbuilt ``zmq/`` beside ``tests/``."""
    pytest.importorskip("zmq")
    (tmp_path / "zmq").mkdir()
    (tmp_path / "zmq" / "__init__.py").write_text(
        "raise ImportError('the source tree, not the installed pyzmq')\n"
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "conftest.py").write_text("import zmq\n")
    (tmp_path / "tests" / "test_version.py").write_text(
        "import zmq\n\ndef test_installed():\n    assert zmq.zmq_version_info() >= (4,)\n"
    )
    return tmp_path


def _pytest_in(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONSAFEPATH"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "tests"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_the_plugin_lets_the_conftest_import_the_installed_pyzmq(sdist_like_tree: Path) -> None:
    without = _pytest_in(sdist_like_tree)
    assert without.returncode != 0
    assert "the source tree, not the installed pyzmq" in without.stdout + without.stderr
    with_plugin = _pytest_in(sdist_like_tree, "-p", PLUGIN)
    assert with_plugin.returncode == 0, with_plugin.stdout + with_plugin.stderr
    assert "1 passed" in with_plugin.stdout


# -- the slow ROUTER server ------------------------------------------------------------------
@pytest.fixture
def server_address() -> Iterator[str]:
    pytest.importorskip("zmq")
    server = subprocess.Popen(
        [sys.executable, pyzmq_probe.__file__, "--delay", "0.3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        word, port = server.stdout.readline().split()
        assert word == b"port"
        yield f"tcp://127.0.0.1:{int(port)}"
    finally:
        assert server.stdin is not None
        server.stdin.close()  # its signal to exit
        assert server.wait(timeout=30) == 0


def test_the_server_answers_concurrent_requests_together_after_the_delay(
    server_address: str,
) -> None:
    import zmq

    context = zmq.Context()
    try:
        clients = [context.socket(zmq.REQ) for _ in range(5)]
        for number, client in enumerate(clients):
            client.linger = 0
            client.connect(server_address)
            client.send(b"request %d" % number)
        started = time.monotonic()
        replies = []
        for client in clients:
            assert client.poll(10_000), "no reply"
            replies.append(client.recv())
        elapsed = time.monotonic() - started
        assert replies == [b"request %d" % number for number in range(5)]
        assert 0.25 <= elapsed < 1.2  # about one delay for all five, not five delays
    finally:
        context.destroy(linger=0)


# -- the probe, through the subprocess, as the harness runs it --------------------------
def test_the_probe_cooperates_with_the_zmq_plugin() -> None:
    pytest.importorskip("zmq")
    result = run_probe(sys.executable, PROBE, concurrency=10, delay=0.3, http=False)
    assert result["error"] is None
    assert result["cooperative"] is True
    assert min(result["latencies"]) >= 0.29  # each call really waited for its reply


def test_the_probe_scores_about_one_without_the_zmq_plugin() -> None:
    pytest.importorskip("zmq")
    result = run_probe(sys.executable, PROBE, concurrency=4, delay=0.2, http=False, without=["zmq"])
    assert result["error"] is None
    assert result["factor"] < 2
    assert result["cooperative"] is False


# -- the real suite --------------------------------------------------------------------
@pytest.mark.compat
@pytest.mark.timeout(1800)
def test_the_suite_has_no_regression_and_its_probe_cooperates(tmp_path: Path) -> None:
    out = Path(os.environ.get("GREENPATCH_COMPAT_OUT", tmp_path))
    result, path = run_suite(resolve_suite("pyzmq"), HarnessOptions(out_dir=out))
    assert result.not_run_reason is None, result.not_run_reason
    assert not result.incomplete, result.notes
    assert not {test.nodeid: test.error for test in result.regressions()}, f"see {path}"
    assert result.modes["patched"].counts.get("passed", 0) >= 300, result.modes["patched"]
    assert result.probe is not None
    assert result.probe.get("cooperative"), result.probe
