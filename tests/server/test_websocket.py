"""WebSocket over WSGIServer, driven by the websocket-client library as a real client."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest

from greenpatch.hub.event import AsyncResult
from greenpatch.server import WebSocket, WebSocketApp

from ._client import WAIT, ResponseReader, connect, in_thread

websocket = pytest.importorskip("websocket")


def echo(ws: WebSocket, environ: dict[str, Any]) -> None:
    for message in ws:
        ws.send(message)


@pytest.fixture
def url(start_wsgi):
    server = start_wsgi(WebSocketApp(echo, max_message_size=1000))
    return f"ws://127.0.0.1:{server.address[1]}/"


def client_session(url: str, steps: Any) -> Any:
    ws = websocket.create_connection(url, timeout=WAIT)
    try:
        return steps(ws)
    finally:
        ws.close()


def test_text_and_binary_messages_echo(url):
    def steps(ws: Any) -> list[Any]:
        ws.send("héllo")
        text = ws.recv()
        ws.send_binary(b"\x00\x01\x02")
        binary = ws.recv()
        ws.send("x" * 500)  # a 16-bit length
        return [text, binary, ws.recv()]

    assert in_thread(client_session, url, steps) == ["héllo", b"\x00\x01\x02", "x" * 500]


def test_fragmented_message_is_reassembled(url):
    def steps(ws: Any) -> str:
        ws.send_frame(websocket.ABNF.create_frame("frag", websocket.ABNF.OPCODE_TEXT, 0))
        ws.send_frame(websocket.ABNF.create_frame("ment", websocket.ABNF.OPCODE_CONT, 0))
        ws.send_frame(websocket.ABNF.create_frame("ed", websocket.ABNF.OPCODE_CONT, 1))
        return ws.recv()  # type: ignore[no-any-return]

    assert in_thread(client_session, url, steps) == "fragmented"


def test_ping_is_answered_with_pong(url):
    def steps(ws: Any) -> tuple[int, bytes]:
        ws.ping(b"are you there")
        frame = ws.recv_frame()
        return frame.opcode, frame.data

    assert in_thread(client_session, url, steps) == (websocket.ABNF.OPCODE_PONG, b"are you there")


def test_close_handshake_echoes_the_code(url):
    def steps(ws: Any) -> tuple[int, int]:
        ws.send_close(status=4001, reason=b"bye")
        frame = ws.recv_frame()
        return frame.opcode, struct.unpack("!H", frame.data[:2])[0]

    assert in_thread(client_session, url, steps) == (websocket.ABNF.OPCODE_CLOSE, 4001)


def test_oversized_message_closes_with_1009(url):
    def steps(ws: Any) -> int:
        ws.send("y" * 5000)
        frame = ws.recv_frame()
        assert frame.opcode == websocket.ABNF.OPCODE_CLOSE
        return struct.unpack("!H", frame.data[:2])[0]  # type: ignore[no-any-return]

    assert in_thread(client_session, url, steps) == 1009


def test_invalid_utf8_text_closes_with_1007(url):
    def steps(ws: Any) -> int:
        ws.send(b"\xff\xfe", opcode=websocket.ABNF.OPCODE_TEXT)
        frame = ws.recv_frame()
        return struct.unpack("!H", frame.data[:2])[0]  # type: ignore[no-any-return]

    assert in_thread(client_session, url, steps) == 1007


def _handshake(port: int) -> tuple[Any, bytes]:
    sock = connect(("127.0.0.1", port))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    reader = ResponseReader(sock)
    response = reader.read(head_only=True)
    assert response.status == 101
    # The RFC 6455 example key and its accept value.
    assert response.headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    return sock, reader.buffer


def test_unmasked_client_frame_closes_with_1002(start_wsgi):
    server = start_wsgi(WebSocketApp(echo))
    sock, _ = _handshake(server.address[1])
    with sock:
        sock.sendall(b"\x81\x02hi")  # FIN+text, length 2, no mask bit
        data = sock.recv(100)
        assert data[0] == 0x88 and struct.unpack("!H", data[2:4])[0] == 1002


def test_frames_sent_with_the_handshake_are_not_lost(start_wsgi):
    server = start_wsgi(WebSocketApp(echo))
    sock = connect(server.address)
    mask = b"\x01\x02\x03\x04"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"early"))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        + b"\x81\x85"
        + mask
        + payload
    )
    reader = ResponseReader(sock)
    assert reader.read(head_only=True).status == 101
    while len(reader.buffer) < 7:
        reader.buffer += sock.recv(100)
    assert reader.buffer[:7] == b"\x81\x05early"
    sock.close()


def test_plain_http_request_to_a_websocket_app_gets_400(start_wsgi):
    server = start_wsgi(WebSocketApp(echo))
    with connect(server.address) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert ResponseReader(sock).read().status == 400


def test_wrong_version_gets_426(start_wsgi):
    server = start_wsgi(WebSocketApp(echo))
    with connect(server.address) as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
        )
        response = ResponseReader(sock).read()
        assert response.status == 426
        assert response.headers["sec-websocket-version"] == "13"


def test_client_vanishing_ends_the_handler(start_wsgi):
    ended = AsyncResult()

    def handler(ws: WebSocket, environ: dict[str, Any]) -> None:
        ended.set((ws.receive(), ws.close_code))

    server = start_wsgi(WebSocketApp(handler))
    sock, _ = _handshake(server.address[1])
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    assert ended.get(timeout=WAIT) == (None, 1006)


def test_a_long_close_reason_is_cut_on_a_character_boundary(start_wsgi):
    reason = "é" * 100  # 200 bytes in UTF-8; a close frame holds 123

    def closer(ws: WebSocket, environ: dict[str, Any]) -> None:
        ws.receive()
        ws.close(4000, reason)

    server = start_wsgi(WebSocketApp(closer))

    def steps(ws: Any) -> tuple[int, str]:
        ws.send("go")
        frame = ws.recv_frame()
        return struct.unpack("!H", frame.data[:2])[0], frame.data[2:].decode("utf-8")

    code, received = in_thread(client_session, f"ws://127.0.0.1:{server.address[1]}/", steps)
    assert code == 4000
    assert received == "é" * 61  # 122 bytes: the 62nd character would not fit whole
