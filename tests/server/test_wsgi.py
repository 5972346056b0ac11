"""WSGIServer: keep-alive, pipelining, bodies in and out, limits, slow and vanishing clients."""

from __future__ import annotations

import io
from typing import Any

from greenpatch.hub import joinall, sleep, spawn
from greenpatch.hub.event import Event

from ._client import WAIT, ResponseReader, connect, get, read_until_closed, request


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello " + environ["PATH_INFO"].encode("latin-1")]


def echo_body(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


def streamed(environ: dict[str, Any], start_response: Any) -> Any:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"one,"
    yield b""
    yield b"two,"
    yield b"three"


def post(path: str, body: bytes, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


def test_simple_get_has_content_length_and_date(start_wsgi):
    server = start_wsgi(hello)
    response = request(server.address, get("/path"))
    assert response.status == 200
    assert response.body == b"hello /path"
    assert response.headers["content-length"] == "11"
    assert "date" in response.headers


def test_keep_alive_serves_many_requests_on_one_connection(start_wsgi):
    server = start_wsgi(hello)
    with connect(server.address) as sock:
        reader = ResponseReader(sock)
        for i in range(20):
            sock.sendall(get(f"/{i}"))
            assert reader.read().body == f"hello /{i}".encode()


def test_pipelined_requests_are_answered_in_order(start_wsgi):
    server = start_wsgi(echo_body)
    with connect(server.address) as sock:
        sock.sendall(post("/", b"first") + post("/", b"GET / HTTP/1.1\r\n\r\n") + post("/", b"3"))
        reader = ResponseReader(sock)
        assert [reader.read().body for _ in range(3)] == [b"first", b"GET / HTTP/1.1\r\n\r\n", b"3"]


def test_three_hundred_concurrent_clients(start_wsgi):
    server = start_wsgi(hello)
    clients = [spawn(request, server.address, get(f"/{i}")) for i in range(300)]
    joinall(clients, raise_error=True)
    assert [c.value.body for c in clients] == [f"hello /{i}".encode() for i in range(300)]


def test_chunked_request_body_is_decoded(start_wsgi):
    server = start_wsgi(echo_body)
    raw = (
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n"
    )
    with connect(server.address) as sock:
        sock.sendall(raw + get("/after"))
        reader = ResponseReader(sock)
        assert reader.read().body == b"hello world"
        assert reader.read().status == 200  # the next request was not eaten as body


def test_generator_response_is_chunked_on_http11_and_close_delimited_on_http10(start_wsgi):
    server = start_wsgi(streamed)
    response = request(server.address, get())
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.body == b"one,two,three"
    with connect(server.address) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        raw = read_until_closed(sock)
    assert b"transfer-encoding" not in raw.lower()
    assert raw.endswith(b"\r\n\r\none,two,three")


def test_http10_keep_alive_when_asked(start_wsgi):
    server = start_wsgi(hello)
    with connect(server.address) as sock:
        reader = ResponseReader(sock)
        for _ in range(2):
            sock.sendall(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            response = reader.read()
            assert response.headers["connection"] == "keep-alive"
            assert response.body == b"hello /a"


def test_head_response_has_no_body(start_wsgi):
    server = start_wsgi(hello)
    with connect(server.address) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n" + get("/next"))
        reader = ResponseReader(sock)
        head = reader.read(head_only=True)
        assert head.headers["content-length"] == "7"
        assert reader.read().body == b"hello /next"


def test_expect_100_continue_is_sent_when_the_app_reads(start_wsgi):
    server = start_wsgi(echo_body)
    with connect(server.address) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"data")
        assert ResponseReader(sock).read().body == b"data"


def test_expect_100_continue_not_sent_when_the_app_refuses(start_wsgi):
    def refuse(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("401 Unauthorized", [("Content-Length", "0")])
        return [b""]

    server = start_wsgi(refuse)
    with connect(server.address) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99\r\nExpect: 100-continue\r\n\r\n"
        )
        reader = ResponseReader(sock)
        response = reader.read()
        assert response.status == 401
        assert read_until_closed(sock) == b""  # closed: the body was never invited


def test_wsgi_input_never_reads_past_the_body(start_wsgi):
    seen = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        seen.append([stream.readline(), stream.read(100), stream.read(), stream.readline()])
        start_response("200 OK", [])
        return [b""]

    server = start_wsgi(app)
    with connect(server.address) as sock:
        sock.sendall(post("/", b"line\nrest") + get("/second"))
        reader = ResponseReader(sock)
        assert reader.read().status == 200
        assert reader.read().status == 200
    assert seen[0] == [b"line\n", b"rest", b"", b""]


def test_unread_small_body_is_drained_and_the_connection_kept(start_wsgi):
    server = start_wsgi(hello)
    with connect(server.address) as sock:
        sock.sendall(post("/ignored", b"x" * 1000) + get("/next"))
        reader = ResponseReader(sock)
        assert reader.read().body == b"hello /ignored"
        assert reader.read().body == b"hello /next"


def test_file_wrapper_streams_a_file(start_wsgi):
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Length", "100000")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"f" * 100_000), 4096)

    server = start_wsgi(app)
    assert request(server.address, get()).body == b"f" * 100_000


def test_slow_client_sending_a_byte_at_a_time_is_served(start_wsgi):
    server = start_wsgi(echo_body)
    with connect(server.address) as sock:
        for byte in post("/", b"slow body"):
            sock.sendall(bytes([byte]))
            sleep(0)
        assert ResponseReader(sock).read().body == b"slow body"


def test_client_vanishing_mid_request_does_not_hurt_the_server(start_wsgi):
    server = start_wsgi(echo_body)
    for partial in (b"GET / HT", post("/", b"x" * 100)[:-50], b"POST / HTTP/1.1\r\nHost: t\r\n"):
        sock = connect(server.address)
        sock.sendall(partial)
        sock.close()
    assert request(server.address, get()).status == 200


def test_access_log_in_common_log_format(start_wsgi):
    log = io.StringIO()
    server = start_wsgi(hello, log=log)
    request(server.address, get("/logged?x=1"))
    line = log.getvalue()
    assert line.startswith("127.0.0.1 - - [")
    assert line.rstrip().endswith('"GET /logged?x=1 HTTP/1.1" 200 13')


def test_application_error_answers_500_and_server_keeps_serving(start_wsgi, caplog):
    def broken(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("app exploded")
        return hello(environ, start_response)

    server = start_wsgi(broken)
    assert request(server.address, get("/boom")).status == 500
    assert "app exploded" in caplog.text
    assert request(server.address, get("/fine")).body == b"hello /fine"


def test_idle_keep_alive_connection_is_closed_after_the_timeout(start_wsgi):
    server = start_wsgi(hello, keepalive_timeout=0.05)
    with connect(server.address) as sock:
        sock.sendall(get())
        reader = ResponseReader(sock)
        assert reader.read().status == 200
        assert sock.recv(100) == b""  # closed by the server while idle


def test_header_timeout_answers_408_to_a_stalled_head(start_wsgi):
    server = start_wsgi(hello, header_timeout=0.05)
    with connect(server.address) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
        assert ResponseReader(sock).read().status == 408


def test_graceful_stop_finishes_in_flight_requests_and_closes_idle_ones(start_wsgi):
    entered = Event()
    proceed = Event()

    def slow(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        entered.set()
        proceed.wait()
        start_response("200 OK", [])
        return [b"finished"]

    server = start_wsgi(slow)
    idle = connect(server.address)
    busy = spawn(request, server.address, get())
    entered.wait(WAIT)
    stopper = spawn(server.stop, WAIT)
    assert idle.recv(100) == b""  # the idle connection was closed at once
    proceed.set()
    response = busy.get(timeout=WAIT)
    assert response.body == b"finished"
    assert response.headers["connection"] == "close"
    stopper.join(WAIT)
    assert server.closed
    idle.close()
