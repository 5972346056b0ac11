"""A server of the suite's own (``[services.NAME] command = [...]``): started from
the source tree with the suite's Python, on a free loopback port, stopped after."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from greenpatch.compat_tests.manifest import ManifestError, load_manifest
from greenpatch.compat_tests.services import (
    ServiceUnavailable,
    running_services,
    service_arguments,
)

SERVER = """
import os, socket, sys
port = int(os.environ["ECHO_PORT"])
with open("seen.txt", "w") as out:
    out.write(" ".join(sys.argv[1:]) + "\\n")
listener = socket.create_server(("127.0.0.1", port))
while True:
    conn, _ = listener.accept()
    data = conn.recv(100)
    conn.sendall(data)
    conn.close()
"""

MANIFEST = """
[suite]
distribution = "x"
[services.echo]
command = ["{python}", "server.py", "--port={port}"]
command_env = { ECHO_PORT = "{port}" }
variables = { LOCAL_ECHO_PORT = "{port}", LOCAL_ECHO_HOST = "{host}" }
[probe]
callable = "m:f"
services = ["echo"]
"""


def _manifest(tmp_path: Path, text: str = MANIFEST) -> object:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return load_manifest(path)


def test_the_suites_server_runs_from_its_tree_and_is_stopped_after(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "server.py").write_text(SERVER)
    manifest = _manifest(tmp_path)
    specs = manifest.services  # type: ignore[attr-defined]
    with running_services(specs, {}, tmp_path / "work", sys.executable, tree) as urls:
        url = urls["echo"]
        assert url.startswith("tcp://127.0.0.1:")
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"ping")
            assert conn.recv(100) == b"ping"
        assert (tree / "seen.txt").read_text() == f"--port={port}\n"
        args, env = service_arguments(specs, urls)
        assert args == [] and env == {"LOCAL_ECHO_PORT": str(port), "LOCAL_ECHO_HOST": "127.0.0.1"}
        process = urls.started["echo"]
    assert process.poll() is not None  # stopped with the block
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_a_server_that_dies_at_start_is_unavailable_with_its_log(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "server.py").write_text("raise SystemExit('no echo today')\n")
    specs = _manifest(tmp_path).services  # type: ignore[attr-defined]
    with pytest.raises(
        ServiceUnavailable, match=r"(?s)the suite's server echo .*exited.*no echo today"
    ):
        with running_services(specs, {}, tmp_path / "work", sys.executable, tree):
            pass


def test_a_given_server_is_checked_by_a_connection(tmp_path: Path) -> None:
    specs = _manifest(tmp_path).services  # type: ignore[attr-defined]
    with pytest.raises(ServiceUnavailable, match=r"no echo \(the suite's server\) server answers"):
        with running_services(specs, {"echo": "tcp://127.0.0.1:1"}, tmp_path):
            pass


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (('"--port={port}"', '"--port={host}"'), r"unknown field \{host\}.*known: python, port"),
        (('"{port}" }', '"{python}" }'), r"command_env.ECHO_PORT\]: unknown field \{python\}"),
        (("[services.echo]", "[services.redis]"), r"redis is started by the harness: no command"),
        (('services = ["echo"]', 'services = ["echo2"]'), r"unknown service 'echo2'"),
        (("command = ", "cmd = "), r"\[services.echo\]: unknown service"),
    ],
)
def test_a_bad_command_service_names_its_key(
    tmp_path: Path, change: tuple[str, str], error: str
) -> None:
    with pytest.raises(ManifestError, match=error):
        _manifest(tmp_path, MANIFEST.replace(*change))
