"""Hostile clients against a real WSGIServer on 127.0.0.1: what test_wsgi_limits.py leaves out.

Smuggling shapes (Transfer-Encoding before Content-Length, list-form and
differently-cased duplicate lengths, more malformed chunk framing) must give
400 *and* a closed connection, with the request hidden behind them never
reaching the application.  Responses an application tries to split must never
reach the wire.  Slow clients (slowloris), clients that never read, idle
connections, and WebSocket clients breaking the protocol must each cost the
server a bounded time, and never another client's service.
"""

from __future__ import annotations

import logging
import socket
import struct
from typing import Any

import pytest

from greenpatch.hub import joinall, sleep, spawn
from greenpatch.hub.event import Event
from greenpatch.server import CooperativeSocket, WebSocket, WebSocketApp, WebSocketError

from ._client import WAIT, ResponseReader, connect, get, read_until_closed, request

seen: list[str] = []


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    seen.append(environ["PATH_INFO"])
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok:" + body]


@pytest.fixture
def server(start_wsgi):
    seen.clear()
    return start_wsgi(app, max_body_size=10_000)


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"


def refused_and_closed(server: Any, raw: bytes) -> int:
    """Send ``raw``; the status of the one response, after checking the server closed."""
    with connect(server.address) as sock:
        sock.sendall(raw)
        reader = ResponseReader(sock)
        response = reader.read()
        try:
            rest = reader.buffer + read_until_closed(sock)
        except ConnectionResetError:  # closed with our bytes unread: closed all the same
            rest = reader.buffer
        assert rest == b"", f"bytes after the refusal: {rest[:100]!r}"
        assert response.headers.get("connection") == "close"
    assert "/smuggled" not in seen
    before = len(seen)
    assert request(server.address, get("/after")).status == 200  # still serving
    del seen[before:]  # the callers look at what the hostile request caused
    return response.status


# -- request smuggling ---------------------------------------------------------------


@pytest.mark.parametrize(
    "framing",
    [
        b"Transfer-Encoding: chunked\r\nContent-Length: 4",
        b"Content-Length: 0\r\nTransfer-Encoding: chunked",
        b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\nTransfer-Encoding: chunked",
        b"Content-Length: 4\r\nTransfer-Encoding: Chunked",
        b"content-length: 4\r\ntransfer-encoding: chunked",
    ],
    ids=["te-first", "zero-length-and-te", "te-twice-around-cl", "te-capitalised", "lower-case"],
)
def test_content_length_with_transfer_encoding_is_400_and_closed_in_any_order(server, framing):
    raw = b"POST /s HTTP/1.1\r\nHost: t\r\n" + framing + b"\r\n\r\n0\r\n\r\n" + SMUGGLED
    assert refused_and_closed(server, raw) == 400
    assert seen == []


@pytest.mark.parametrize(
    "lengths",
    [
        b"Content-Length: 3, 30",
        b"Content-Length: 3\r\nContent-Length: 3, 30",
        b"Content-Length: 3\r\ncontent-length: 4",
        b"Content-Length: 3,",
        b"Content-Length: 3\r\nContent-Length:",
    ],
    ids=["list", "header-and-list", "other-case", "trailing-comma", "empty-second"],
)
def test_conflicting_content_lengths_are_400_and_closed(server, lengths):
    raw = b"POST /s HTTP/1.1\r\nHost: t\r\n" + lengths + b"\r\n\r\nabc" + SMUGGLED
    assert refused_and_closed(server, raw) == 400
    assert seen == []


@pytest.mark.parametrize(
    "chunks",
    [
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"+5\r\nhello\r\n0\r\n\r\n",
        b" 5\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5;" + b"e" * 5000 + b"\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\nTrailer: x\n\r\n",
        b"\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
    ids=[
        "hex-prefix",
        "plus-sign",
        "leading-space",
        "size-line-ends-in-lf",
        "data-not-followed-by-crlf",
        "data-followed-by-lf",
        "extension-too-long",
        "trailer-ends-in-lf",
        "empty-line-first",
    ],
)
def test_malformed_chunk_framing_is_400_and_closed(server, chunks):
    raw = b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + SMUGGLED
    assert refused_and_closed(server, raw) == 400
    assert seen == ["/c"]  # the application ran, its body read failed, nothing after it ran


@pytest.mark.timeout(60)
def test_chunk_size_line_split_across_packets_is_read_without_spinning(start_wsgi):
    # A chunk-size line arriving in two pieces once made the reader loop
    # forever on its own buffer, never yielding: the whole server froze.
    reading = Event()

    def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        reading.set()
        body = environ["wsgi.input"].read()
        start_response("200 OK", [])
        return [body]

    server = start_wsgi(echo)
    with connect(server.address) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1")
        assert reading.wait(WAIT)  # the "1" is in the server's buffer, no line end yet
        sock.sendall(b"0\r\n" + b"x" * 16)  # ...and the rest of "10\r\n" comes later
        sock.sendall(b"\r\n0\r\n\r\n")
        assert ResponseReader(sock).read().body == b"x" * 16
    assert request(server.address, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status == 200


# -- response splitting ------------------------------------------------------------------


def _lazy(headers: list[tuple[str, str]]) -> Any:
    def generator_app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", headers)  # runs only when the server iterates
        yield b"body"

    return generator_app


def _retry_with_exc_info(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    try:
        raise KeyError("boom")
    except KeyError:
        import sys

        start_response("500 Oops", [("X-Evil", "a\r\nSet-Cookie: stolen=1")], sys.exc_info())
    return [b"never"]


def _plain(status: str, headers: list[tuple[str, str]]) -> Any:
    def plain_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, headers)
        return [b"body"]

    return plain_app


@pytest.mark.parametrize(
    "application",
    [
        _plain("200 OK", [("X-Evil", "a\rSet-Cookie: stolen=1")]),
        _plain("200 OK\nSet-Cookie: stolen=1", []),
        _plain("200 OK", [("X-Evil\r\nSet-Cookie", "stolen=1")]),
        _plain("200 OK", [("X-Evil", "caf\u00e9 \u2028Set-Cookie: stolen=1")]),
        _lazy([("X-Evil", "a\r\nSet-Cookie: stolen=1")]),
        _retry_with_exc_info,
    ],
    ids=["cr-in-value", "lf-in-status", "crlf-in-name", "not-latin-1", "lazy", "exc-info"],
)
def test_split_response_from_the_app_never_reaches_the_wire(start_wsgi, application):
    server = start_wsgi(application)
    with connect(server.address) as sock:
        sock.sendall(get("/one"))
        wire = read_until_closed(sock)
    assert wire.startswith(b"HTTP/1.1 500 ")
    assert wire.count(b"HTTP/1.1 ") == 1  # one response, and no second one smuggled in it
    head = wire.partition(b"\r\n\r\n")[0]
    assert b"stolen" not in wire and b"X-Evil" not in head
    assert all(b"\r" not in line and b"\n" not in line for line in head.split(b"\r\n"))
    assert request(server.address, get()).status == 500  # and the server goes on


# -- slow and idle clients -----------------------------------------------------------------


def wait_until(condition: Any) -> None:
    """Poll ``condition`` while the hub runs the clients and the server; fail after WAIT."""
    for _ in range(int(WAIT / 0.005)):
        if condition():
            return
        sleep(0.005)
    raise AssertionError("condition not reached in time")


def trickle(sock: CooperativeSocket, data: bytes, pause: float = 0.02) -> None:
    for byte in data:
        sock.sendall(bytes([byte]))
        sleep(pause)  # pacing of the slow client, not a wait for the server


def test_header_timeout_bounds_the_whole_head_not_each_byte(start_wsgi):
    server = start_wsgi(app, header_timeout=0.3)
    with connect(server.address) as sock:
        # Each byte arrives well within the timeout; the head as a whole never ends.
        for _ in range(int(WAIT / 0.02)):
            sock.sendall(b"X")
            try:
                sock.wait_readable(0.02)
                break
            except TimeoutError:
                continue
        response = ResponseReader(sock)
        assert response.read().status == 408
        assert read_until_closed(sock) == b""


def test_many_byte_at_a_time_clients_do_not_starve_a_normal_one(start_wsgi):
    server = start_wsgi(app)
    served = Event()
    waiting = []

    def slow_client(index: int) -> int:
        raw = get(f"/slow{index}")
        with connect(server.address) as sock:
            trickle(sock, raw[:-1], pause=0.005)
            waiting.append(index)
            served.wait(WAIT)  # hold the connection half-sent until the normal client is served
            sock.sendall(raw[-1:])
            return ResponseReader(sock).read().status

    slow = [spawn(slow_client, i) for i in range(100)]
    wait_until(lambda: len(waiting) == 100)  # every slow client has its head half-sent
    assert request(server.address, get("/normal")).status == 200
    served.set()
    joinall(slow, timeout=WAIT, raise_error=True)
    assert [g.value for g in slow] == [200] * 100


def test_connection_cap_holds_and_slow_clients_are_evicted_so_others_get_served(start_wsgi):
    access: list[str] = []
    normal_ran_after: list[list[str]] = []

    class AccessLog:
        def write(self, line: str) -> None:
            access.append(line)

    def recording(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        normal_ran_after.append([line for line in access if '" 408 ' in line])
        start_response("200 OK", [])
        return [b"served"]

    server = start_wsgi(recording, pool=5, header_timeout=0.3, log=AccessLog())

    def slow_client() -> int:
        with connect(server.address) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")  # and never the end of it
            return ResponseReader(sock).read().status

    slow = [spawn(slow_client) for _ in range(5)]
    wait_until(lambda: len(server.pool) == 5)  # the five slots are taken
    normal = spawn(request, server.address, get("/normal"))
    joinall([*slow, normal], timeout=WAIT, raise_error=True)
    assert [g.value for g in slow] == [408] * 5
    assert normal.value.body == b"served"
    # The sixth client waited in the backlog: the application saw it only after
    # a slow client had been answered 408 and its slot freed.
    assert len(normal_ran_after) == 1 and normal_ran_after[0]


def test_connection_that_never_sends_is_closed_after_the_header_timeout(start_wsgi):
    server = start_wsgi(app, header_timeout=0.2)
    with connect(server.address) as sock:
        assert sock.recv(100) == b""  # closed without a word


def test_blank_lines_do_not_keep_an_idle_keep_alive_connection_open(start_wsgi):
    server = start_wsgi(app, header_timeout=0.3, keepalive_timeout=WAIT * 10)
    with connect(server.address) as sock:
        sock.sendall(get())
        reader = ResponseReader(sock)
        assert reader.read().status == 200
        for _ in range(int(WAIT / 0.02)):
            sock.sendall(b"\r\n")  # RFC 9112 lets a server skip these; they are not a request
            try:
                sock.wait_readable(0.02)
                break
            except TimeoutError:
                continue
        assert reader.read().status == 408
        assert read_until_closed(sock) == b""


def test_client_that_stops_reading_the_response_is_dropped_after_read_timeout(start_wsgi):
    released = Event()

    class Endless:
        def __iter__(self) -> Any:
            while True:
                yield b"x" * 65536

        def close(self) -> None:
            released.set()

    def flood(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [])
        return Endless() if environ["PATH_INFO"] == "/flood" else [b"small"]

    server = start_wsgi(flood, read_timeout=0.2)
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(server.address)
    with CooperativeSocket(raw, timeout=WAIT) as sock:
        sock.sendall(get("/flood"))
        # The client never reads: the server's sends stall, and must give up.
        assert released.wait(WAIT), "the handler still holds a client that stopped reading"
    assert request(server.address, get()).status == 200


# -- hostile WebSocket clients ---------------------------------------------------------------

HANDSHAKE = (
    b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
MASK = b"\x11\x22\x33\x44"


def frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, mask: bool = True) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    size = len(payload)
    if size < 126:
        head = bytes([first, (0x80 if mask else 0) | size])
    else:
        head = bytes([first, (0x80 if mask else 0) | 126]) + struct.pack("!H", size)
    if not mask:
        return head + payload
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def echo(ws: WebSocket, environ: dict[str, Any]) -> None:
    for message in ws:
        ws.send(message)


def ws_close_code(server: Any, frames: bytes) -> int:
    """Handshake, send ``frames``; the code of the server's close frame, once it closed."""
    with connect(server.address) as sock:
        sock.sendall(HANDSHAKE)
        reader = ResponseReader(sock)
        assert reader.read(head_only=True).status == 101
        sock.sendall(frames)
        try:
            data = reader.buffer + read_until_closed(sock)  # the server closes after it
        except ConnectionResetError:
            data = reader.buffer
    assert data[0] == 0x88, data[:20]
    return int(struct.unpack("!H", data[2:4])[0])


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        (frame(1, b"hi", mask=False), 1002),
        (frame(2, b"y" * 200), 1009),
        (frame(1, b"a" * 60, fin=False) + frame(0, b"a" * 60), 1009),
        (frame(3, b"x"), 1002),
        (frame(11, b"x"), 1002),
        (frame(2, b"x", rsv=0x40), 1002),
        (frame(9, b"ping", fin=False), 1002),
        (frame(10, b"p" * 126), 1002),
        (frame(0, b"orphan"), 1002),
        (frame(1, b"half", fin=False) + frame(2, b"new"), 1002),
        (frame(1, b"\xc3\x28"), 1007),
        (frame(1, b"ok\xe2\x82", fin=False) + frame(0, b"\x28"), 1007),
        (frame(8, struct.pack("!H", 1005)), 1002),
        (frame(8, struct.pack("!H", 999)), 1002),
        (frame(8, struct.pack("!H", 2999)), 1002),
        (frame(8, b"\x03"), 1002),
        (frame(8, struct.pack("!H", 1000) + b"\xff"), 1007),
        (frame(8, struct.pack("!H", 4321) + b"bye"), 4321),
    ],
    ids=[
        "unmasked",
        "oversize",
        "oversize-fragmented",
        "reserved-data-opcode",
        "reserved-control-opcode",
        "rsv1",
        "fragmented-ping",
        "long-pong",
        "continuation-first",
        "new-message-inside-fragmented",
        "bad-utf8",
        "bad-utf8-across-fragments",
        "close-code-1005",
        "close-code-999",
        "close-code-2999",
        "close-one-byte",
        "close-reason-not-utf8",
        "close-code-private-echoed",
    ],
)
def test_hostile_websocket_frames_close_with_the_right_code(start_wsgi, frames, code):
    server = start_wsgi(WebSocketApp(echo, max_message_size=100))
    assert ws_close_code(server, frames) == code
    assert ws_close_code(server, frame(8, struct.pack("!H", 1000))) == 1000  # still serving


def test_websocket_frame_claiming_a_huge_length_without_a_limit_does_not_crash(start_wsgi, caplog):
    # With max_message_size=None, a declared 2**40 bytes once went straight
    # into recv(2**40): a MemoryError in the handler.  A length with the high
    # bit set is a protocol error (RFC 6455 5.2).
    ended = Event()
    codes: list[int | None] = []

    def handler(ws: WebSocket, environ: dict[str, Any]) -> None:
        ws.receive()
        codes.append(ws.close_code)
        ended.set()

    server = start_wsgi(WebSocketApp(handler, max_message_size=None))
    for declared in (2**40, 2**63 + 1):
        ended.clear()
        with connect(server.address) as sock:
            sock.sendall(HANDSHAKE)
            assert ResponseReader(sock).read(head_only=True).status == 101
            sock.sendall(bytes([0x82, 0xFF]) + struct.pack("!Q", declared) + MASK + b"abc")
            sock.shutdown(socket.SHUT_WR)  # and then the client gives up
            assert ended.wait(WAIT)
    assert codes == [1006, 1002]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def trickled_post(server: Any, body: bytes, pause: float) -> int:
    """POST ``body`` a byte at a time, ``pause`` seconds apart; the response's status."""
    with connect(server.address) as sock:
        sock.sendall(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        for index in range(len(body)):
            try:
                sock.wait_readable(pause)  # the server answered early: stop sending
                break
            except TimeoutError:
                pass
            sock.sendall(body[index : index + 1])
        return ResponseReader(sock).read().status


@pytest.mark.parametrize(("body_timeout", "status"), [(0.3, 408), (None, 200)])
def test_body_timeout_bounds_a_body_trickled_just_inside_read_timeout(
    start_wsgi, body_timeout, status
):
    # Each byte comes well within read_timeout; only body_timeout bounds the whole.
    server = start_wsgi(app, read_timeout=WAIT, body_timeout=body_timeout)
    assert trickled_post(server, b"x" * 20, pause=0.05) == status
    assert request(server.address, get("/after")).status == 200  # still serving


def test_websocket_send_timeout_drops_a_peer_that_stops_reading(start_wsgi):
    outcome: list[Any] = []
    finished = Event()

    def flood(ws: WebSocket, environ: dict[str, Any]) -> None:
        try:
            while True:
                ws.send(b"x" * 65536)
        except Exception as exc:
            outcome.append(exc)
            raise
        finally:
            finished.set()

    server = start_wsgi(WebSocketApp(flood, send_timeout=0.2))
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(server.address)
    with CooperativeSocket(raw, timeout=WAIT) as sock:
        sock.sendall(HANDSHAKE)  # then never reads: the server's sends stall
        assert finished.wait(WAIT), "the handler still waits on a peer that stopped reading"
    [error] = outcome
    assert isinstance(error, WebSocketError) and error.code == 1006
    assert request(server.address, get()).status == 400  # still serving (not a handshake)
