"""Fuzzing the WebSocket frame parser (RFC 6455), fed by a fake socket and by a real one.

Properties:

* any byte stream after the handshake ends the message iteration without an
  exception escaping; what the server sent back is well-formed server frames
  (unmasked, final, known opcodes), with at most one close frame, last, whose
  code is one a server may send;
* valid messages -- fragmented anywhere, with pings between the fragments,
  delivered in arbitrary TCP segments -- come out whole and in order, and each
  ping is answered with a pong carrying its payload;
* one protocol violation planted in a valid stream closes the connection with
  the documented code (1002 protocol, 1007 not UTF-8, 1009 too big);
* over loopback, a real WSGIServer survives arbitrary frames and serves the
  next WebSocket client.

Examples per property are small by default; set ``GREENPATCH_FUZZ_EXAMPLES``
for a longer run (``GREENPATCH_FUZZ_EXAMPLES=20000 .venv/bin/pytest
tests/server/test_fuzz_websocket.py``).
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenpatch.server import WebSocket, WebSocketApp
from greenpatch.server._http import Reader
from greenpatch.server.websocket import _unmask
from tests._fuzz import fuzz

from ._client import ResponseReader, connect

MAX_MESSAGE = 300
#: Codes a server may put in a close frame (1005, 1006 and 1015 never go on the wire).
SENDABLE = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}


class FakeSocket:
    """Delivers ``data`` in the given segment sizes (then EOF) and records what is sent."""

    def __init__(self, data: bytes, sizes: list[int] | None = None) -> None:
        self.rest = data
        self.sizes = list(sizes or [])
        self.sent = b""

    def recv_timeout(self, bufsize: int, timeout: float | None) -> bytes:
        size = self.sizes.pop(0) if self.sizes else len(self.rest)
        size = min(size, bufsize)
        data, self.rest = self.rest[:size], self.rest[size:]
        return data

    def sendall(self, data: bytes) -> None:
        self.sent += data


def client_frame(
    opcode: int,
    payload: bytes,
    fin: bool = True,
    mask: bytes = b"\x0f\xa0\x55\x01",
    rsv: int = 0,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """A client frame as it goes on the wire; ``length`` overrides the declared length."""
    size = len(payload) if length is None else length
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    bit = 0x80 if masked else 0
    if size < 126:
        head = bytes([first, bit | size])
    elif size < 65536:
        head = bytes([first, bit | 126]) + struct.pack("!H", size)
    else:
        head = bytes([first, bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Parse what the server sent, checking that every frame is a valid server frame."""
    frames = []
    while data:
        first, second = data[0], data[1]
        assert first & 0x80 and not first & 0x70, "server frames are final, no reserved bits"
        assert not second & 0x80, "server frames are never masked"
        opcode, length, at = first & 0x0F, second & 0x7F, 2
        if length == 126:
            (length,), at = struct.unpack("!H", data[2:4]), 4
        elif length == 127:
            (length,), at = struct.unpack("!Q", data[2:10]), 10
        assert opcode in (1, 2, 8, 9, 10), opcode
        payload = data[at : at + length]
        assert len(payload) == length, "truncated server frame"
        frames.append((opcode, payload))
        data = data[at + length :]
    closes = [i for i, (opcode, _) in enumerate(frames) if opcode == 8]
    assert closes in ([], [len(frames) - 1]), "one close frame at most, and nothing after it"
    if closes:
        payload = frames[-1][1]
        assert len(payload) >= 2 and struct.unpack("!H", payload[:2])[0] in SENDABLE | set(
            range(3000, 5000)
        )
        payload[2:].decode("utf-8")  # the reason is UTF-8
    return frames


def run(data: bytes, sizes: list[int] | None = None) -> tuple[list[Any], WebSocket, FakeSocket]:
    sock = FakeSocket(data, sizes)
    ws = WebSocket(sock, Reader(sock, None), MAX_MESSAGE)  # type: ignore[arg-type]
    messages = list(ws)  # must end: EOF, a close frame, or a protocol error
    assert ws.closed
    return messages, ws, sock


def close_code(sock: FakeSocket) -> int | None:
    frames = server_frames(sock.sent)
    if frames and frames[-1][0] == 8:
        return int(struct.unpack("!H", frames[-1][1][:2])[0])
    return None


# -- arbitrary bytes ------------------------------------------------------------------


@fuzz(400)
@given(st.binary(max_size=400), st.lists(st.integers(1, 30), max_size=20))
def test_arbitrary_bytes_end_the_iteration_and_the_server_only_sends_valid_frames(data, sizes):
    _, ws, sock = run(data, sizes)
    code = close_code(sock)
    assert ws.close_code in (code, 1006) or (code == 1000 and ws.close_code == 1005)


@fuzz(200)
@given(st.binary(max_size=64), st.binary(min_size=4, max_size=4))
def test_unmask_is_a_bytewise_xor_with_the_repeated_key(data, mask):
    assert _unmask(data, mask) == bytes(b ^ mask[i % 4] for i, b in enumerate(data))


# -- valid streams ------------------------------------------------------------------


messages = st.lists(st.one_of(st.text(max_size=60), st.binary(max_size=60)), min_size=1, max_size=5)


@st.composite
def valid_streams(draw: Any) -> tuple[bytes, list[Any], list[bytes]]:
    """Messages, each split into random fragments, pings between fragments; then a close."""
    wire = b""
    pings = []
    sent = draw(messages)
    for message in sent:
        payload = message.encode() if isinstance(message, str) else message
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)])]
        for index, piece in enumerate(pieces):
            opcode = (1 if isinstance(message, str) else 2) if index == 0 else 0
            mask = draw(st.binary(min_size=4, max_size=4))
            wire += client_frame(opcode, piece, fin=index == len(pieces) - 1, mask=mask)
            if draw(st.integers(0, 3)) == 0:
                ping = draw(st.binary(max_size=125))
                pings.append(ping)
                wire += client_frame(9, ping)
    wire += client_frame(8, struct.pack("!H", 1000) + b"bye")
    return wire, sent, pings


@fuzz(200)
@given(valid_streams(), st.lists(st.integers(1, 20), max_size=40))
def test_valid_fragmented_messages_come_out_whole_and_pings_get_pongs(stream, sizes):
    wire, sent, pings = stream
    received, ws, sock = run(wire, sizes)
    assert received == sent
    frames = server_frames(sock.sent)
    assert [payload for opcode, payload in frames if opcode == 10] == pings
    assert frames[-1] == (8, struct.pack("!H", 1000))  # the close echoed
    assert (ws.close_code, ws.close_reason) == (1000, "bye")


# -- one planted violation -----------------------------------------------------------


def _utf8_broken(text: bytes) -> bytes:
    return text[:1] + b"\xc3\x28" + text[1:]


VIOLATIONS = {
    # name: (frames replacing one valid message, the close code expected)
    "unmasked": (lambda p: client_frame(2, p, masked=False), 1002),
    "rsv1": (lambda p: client_frame(2, p, rsv=4), 1002),
    "rsv3": (lambda p: client_frame(1, b"x", rsv=1), 1002),
    "data-opcode-3": (lambda p: client_frame(3, p), 1002),
    "data-opcode-7": (lambda p: client_frame(7, p), 1002),
    "control-opcode-11": (lambda p: client_frame(11, p[:100]), 1002),
    "control-opcode-15": (lambda p: client_frame(15, p[:100]), 1002),
    "fragmented-ping": (lambda p: client_frame(9, p[:100], fin=False), 1002),
    "fragmented-close": (lambda p: client_frame(8, b"\x03\xe8", fin=False), 1002),
    "long-ping": (lambda p: client_frame(9, b"p" * 126), 1002),
    "continuation-first": (lambda p: client_frame(0, p), 1002),
    "text-inside-fragmented": (
        lambda p: client_frame(2, p, fin=False) + client_frame(1, b"x"), 1002),
    "bad-utf8": (lambda p: client_frame(1, _utf8_broken(p)), 1007),
    "bad-utf8-fragmented": (
        lambda p: client_frame(1, b"a\xc3", fin=False) + client_frame(0, b"\x28"), 1007),
    "too-big": (lambda p: client_frame(2, b"b" * (MAX_MESSAGE + 1)), 1009),
    "too-big-fragmented": (
        lambda p: client_frame(2, b"b" * MAX_MESSAGE, fin=False) + client_frame(0, b"b"), 1009),
    "too-big-declared": (lambda p: client_frame(2, b"", length=2**40)[:14], 1009),
    "length-high-bit": (lambda p: client_frame(2, b"", length=2**63 + 1)[:14], 1002),
    "close-one-byte": (lambda p: client_frame(8, b"\x03"), 1002),
    "close-code-1005": (lambda p: client_frame(8, struct.pack("!H", 1005)), 1002),
    "close-code-1006": (lambda p: client_frame(8, struct.pack("!H", 1006)), 1002),
    "close-code-1015": (lambda p: client_frame(8, struct.pack("!H", 1015)), 1002),
    "close-code-999": (lambda p: client_frame(8, struct.pack("!H", 999)), 1002),
    "close-code-2000": (lambda p: client_frame(8, struct.pack("!H", 2000)), 1002),
    "close-code-5000": (lambda p: client_frame(8, struct.pack("!H", 5000)), 1002),
    "close-reason-not-utf8": (lambda p: client_frame(8, b"\x03\xe8\xff\xfe"), 1007),
}  # fmt: skip


@fuzz(250)
@given(
    st.lists(st.binary(max_size=40), min_size=1, max_size=4),
    st.data(),
    st.sampled_from(sorted(VIOLATIONS)),
    st.lists(st.integers(1, 25), max_size=40),
)
def test_a_planted_violation_closes_with_the_documented_code(payloads, data, name, sizes):
    at = data.draw(st.integers(0, len(payloads) - 1))
    make, code = VIOLATIONS[name]
    wire = b"".join(client_frame(2, p) for p in payloads[:at])
    wire += make(payloads[at] or b"z") + b"".join(client_frame(2, p) for p in payloads[at + 1 :])
    received, ws, sock = run(wire, sizes)
    assert received == payloads[:at]  # what came before was delivered, nothing after
    assert close_code(sock) == code, name
    assert ws.close_code == code


# -- a real server ------------------------------------------------------------------

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def echo(ws: WebSocket, environ: dict[str, Any]) -> None:
    for message in ws:
        ws.send(message)


def exchange(address: Any, frames: bytes) -> bytes:
    """Handshake, send ``frames``, half-close; all the server sent after the 101."""
    with connect(address) as sock:
        sock.sendall(HANDSHAKE)
        reader = ResponseReader(sock)
        assert reader.read(head_only=True).status == 101
        data = reader.buffer
        try:
            sock.sendall(frames)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # closed by the server after a violation
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return data


@pytest.fixture
def ws_server(start_wsgi):
    # One server for all the examples of a test: it must survive every one of them.
    return start_wsgi(WebSocketApp(echo, max_message_size=1000))


@fuzz(60)
@given(
    st.one_of(
        st.binary(max_size=200),
        valid_streams().map(lambda stream: stream[0]),
        st.builds(
            lambda name, payload: VIOLATIONS[name][0](payload),
            st.sampled_from(sorted(VIOLATIONS)),
            st.binary(min_size=1, max_size=40),
        ),
    )
)
def test_real_server_survives_arbitrary_frames_and_serves_the_next_client(ws_server, frames):
    server = ws_server
    server_frames(exchange(server.address, frames))
    reply = exchange(server.address, client_frame(1, b"next") + client_frame(8, b"\x03\xe8"))
    assert server_frames(reply)[0] == (1, b"next")
