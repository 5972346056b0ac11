"""The built-in websocket-client suite: its manifest loads and names a probe that
imports; the probe's slow WebSocket server speaks the protocol; the probe
cooperates, and scores about 1 when the library is made to block (seconds,
loopback only).  The real run of the suite is marked ``compat`` (a minute)."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from greenpatch.compat_tests import _slow_websocket
from greenpatch.compat_tests.harness import HarnessOptions, run_suite
from greenpatch.compat_tests.library_probes import websocket_client as websocket_probe
from greenpatch.compat_tests.manifest import builtin_suites, resolve_suite
from greenpatch.compat_tests.probes import load_callable, run_probe

PROBE = "greenpatch.compat_tests.library_probes.websocket_client:probe"
SERVER = Path(_slow_websocket.__file__)
# RFC 6455, section 1.3: the sample key and the answer it must get.
RFC_KEY, RFC_ACCEPT = b"dGhlIHNhbXBsZSBub25jZQ==", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_the_manifest_is_built_in_and_names_an_importable_probe() -> None:
    assert "websocket-client" in builtin_suites()
    manifest = resolve_suite("websocket-client")
    assert manifest.distribution == "websocket-client"
    assert manifest.tests == ("websocket/tests",)
    assert manifest.services == ()  # 0.x: public servers only (deselected)
    (echo,) = manifest.for_version("1.9.2").services
    assert echo.name == "echo" and echo.command == ("{python}", "websocket/tests/echo-server.py")
    assert echo.command_env == echo.variables == {"LOCAL_WS_SERVER_PORT": "{port}"}
    assert manifest.probe is not None
    assert manifest.probe.callable == PROBE
    assert load_callable(manifest.probe.callable) is websocket_probe.probe


def test_every_deselection_names_the_internet_host_it_needs() -> None:
    manifest = resolve_suite("websocket-client")
    assert len(manifest.deselect) >= 15
    for entry in manifest.deselect:
        assert entry.id is not None and entry.id.startswith("websocket/tests/test_"), entry
        assert entry.reason.startswith("needs the internet: "), entry
        assert any(host in entry.reason for host in ("bitfinex", "twilio", "google")), entry


def test_older_releases_get_their_own_deselections() -> None:
    manifest = resolve_suite("websocket-client")
    assert manifest.version == "latest" and manifest.matrix[0] == "latest"
    newest = manifest.for_version("1.9.2")
    assert newest.deselect == manifest.deselect and len(newest.applied) == 1  # the echo server
    ids = {entry.id for entry in manifest.for_version("1.8.0").deselect}
    assert "websocket/tests/test_http.py::HttpTest::test_proxy_connect" in ids
    old = manifest.for_version("0.59.0")
    ids = {entry.id for entry in old.deselect}
    assert "websocket/tests/test_websocket.py::WebSocketTest::testWebSocket" in ids
    assert "websocket/tests/test_http.py::HttpTest::testConnect" in ids
    assert all(entry.reason.startswith("needs ") for entry in old.deselect)


def test_the_accept_key_is_rfc_6455s_example() -> None:
    assert _slow_websocket.accept_key(RFC_KEY) == RFC_ACCEPT


# -- the slow WebSocket server, spoken to by hand -------------------------------------
@pytest.fixture
def server_port() -> Iterator[int]:
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "--delay", "0.01"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        word, port = server.stdout.readline().split()
        assert word == b"port"
        yield int(port)
    finally:
        assert server.stdin is not None
        server.stdin.close()  # its signal to exit
        assert server.wait(timeout=30) == 0


def _client_frame(opcode: int, payload: bytes, final: bool = True) -> bytes:
    mask = b"\x07\x5a\xc3\x01"
    head = bytes([(0x80 if final else 0) | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    return head + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def _server_frame(stream: BinaryIO) -> tuple[int, bytes]:
    first, second = stream.read(2)
    assert first & 0x80 and not second & 0x80  # final, and a server never masks
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", stream.read(2))
    return first & 0x0F, stream.read(size)


def _handshake(sock: socket.socket, key: bytes | None) -> bytes:
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    if key is not None:
        request += b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n"
    sock.sendall(request + b"\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        assert chunk, answer
        answer += chunk
    return answer


def test_the_server_echoes_messages_answers_ping_and_close(server_port: int) -> None:
    with socket.create_connection(("127.0.0.1", server_port), timeout=30) as sock:
        head = _handshake(sock, RFC_KEY)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"\r\nSec-WebSocket-Accept: " + RFC_ACCEPT + b"\r\n" in head
        stream = sock.makefile("rb")
        sock.sendall(_client_frame(0x9, b"are you there"))
        assert _server_frame(stream) == (0xA, b"are you there")
        # A fragmented text message comes back whole, with its first frame's opcode.
        sock.sendall(_client_frame(0x1, b"hel", final=False) + _client_frame(0x0, b"lo"))
        assert _server_frame(stream) == (0x1, b"hello")
        payload = bytes(range(256)) * 2  # a 16-bit length, both ways
        sock.sendall(_client_frame(0x2, payload))
        assert _server_frame(stream) == (0x2, payload)
        sock.sendall(_client_frame(0x8, struct.pack("!H", 1000) + b"bye"))
        assert _server_frame(stream) == (0x8, struct.pack("!H", 1000))
        assert stream.read(1) == b""  # and the server ends the connection


def test_the_server_refuses_a_request_without_a_key(server_port: int) -> None:
    with socket.create_connection(("127.0.0.1", server_port), timeout=30) as sock:
        assert _handshake(sock, None).startswith(b"HTTP/1.1 400 ")


# -- the probe, through the subprocess, as the harness runs it -------------------------
def test_the_probe_cooperates() -> None:
    pytest.importorskip("websocket")
    result = run_probe(sys.executable, PROBE, concurrency=10, delay=0.3, http=False)
    assert result["error"] is None
    assert result["cooperative"] is True
    assert min(result["latencies"]) >= 0.29  # each call really waited for the echo


# The library made to block: its connections use the original socket class.
BLOCKING_PROBE = """
import types

import greenpatch
import socket as green_socket
import websocket._http

from greenpatch.compat_tests.library_probes import websocket_client

module = types.SimpleNamespace(**vars(green_socket))
module.socket = greenpatch.original("socket", "socket")
websocket._http.socket = module
probe = websocket_client.probe
"""


def test_the_probe_scores_about_one_when_the_library_blocks(tmp_path: Path) -> None:
    pytest.importorskip("websocket")
    (tmp_path / "blocking_websocket.py").write_text(textwrap.dedent(BLOCKING_PROBE))
    result = run_probe(
        sys.executable,
        "blocking_websocket:probe",
        concurrency=5,
        delay=0.2,
        http=False,
        cwd=str(tmp_path),
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert result["error"] is None
    assert result["factor"] < 2
    assert result["cooperative"] is False


# -- the real suite --------------------------------------------------------------------
@pytest.mark.compat
@pytest.mark.timeout(1800)
def test_the_suite_has_no_regression_and_its_probe_cooperates(tmp_path: Path) -> None:
    # The harness starts the suite's echo server (websocket/tests/echo-server.py).
    out = Path(os.environ.get("GREENPATCH_COMPAT_OUT", tmp_path))
    result, path = run_suite(resolve_suite("websocket-client"), HarnessOptions(out_dir=out))
    assert result.not_run_reason is None, result.not_run_reason
    assert not result.incomplete, result.notes
    assert not {test.nodeid: test.error for test in result.regressions()}, f"see {path}"
    # The echo server's tests ran: they skip themselves without it.
    assert result.modes["patched"].counts.get("passed", 0) >= 200, result.modes["patched"]
    assert result.probe is not None
    assert result.probe.get("cooperative"), result.probe
