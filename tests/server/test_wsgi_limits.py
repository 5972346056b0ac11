"""Bad input gets the right status, smuggling attempts are refused, and the server goes on."""

from __future__ import annotations

from typing import Any

import pytest

from ._client import ResponseReader, connect, get, read_until_closed, request

calls: list[str] = []


def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    calls.append(environ["PATH_INFO"])
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok:" + body]


@pytest.fixture
def server(start_wsgi):
    calls.clear()
    return start_wsgi(app, max_body_size=1000, max_headers=20)


def refused(server: Any, raw: bytes) -> int:
    """Send ``raw``; return the status and check the connection was closed after it."""
    with connect(server.address) as sock:
        sock.sendall(raw)
        reader = ResponseReader(sock)
        status = reader.read().status
        try:
            rest = reader.buffer + read_until_closed(sock)
        except ConnectionResetError:
            rest = b""
        assert rest == b"", "the connection must close after a refused request"
    # ...and the server keeps serving.
    assert request(server.address, get("/after")).status == 200
    return status


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-A: 1\r\n" * 30 + b"\r\n", 431),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nExpect: magic\r\n\r\n", 417),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 413),
    ],
    ids=[
        "request-line-too-long",
        "header-too-long",
        "too-many-headers",
        "garbage",
        "extra-token",
        "http2",
        "missing-host",
        "two-hosts",
        "no-colon",
        "space-in-name",
        "bare-cr-in-value",
        "unknown-expectation",
        "body-over-cap",
    ],
)
def test_bad_requests_get_the_right_status(server, raw, status):
    assert refused(server, raw) == status
    assert "/" not in calls  # the application never saw them


def test_chunked_body_over_the_cap_is_413(server):
    chunks = b"".join(b"100\r\n" + b"x" * 256 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"
    raw = b"POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    assert refused(server, raw) == 413


# -- request smuggling -----------------------------------------------------------------


def test_content_length_with_transfer_encoding_is_refused(server):
    raw = (
        b"POST /s HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
    )
    assert refused(server, raw) == 400
    assert "/smuggled" not in calls


def test_conflicting_content_lengths_are_refused(server):
    raw = b"POST /s HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc"
    assert refused(server, raw) == 400


def test_identical_duplicate_content_lengths_are_accepted(server):
    raw = b"POST /s HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
    assert request(server.address, raw).body == b"ok:abc"


@pytest.mark.parametrize(
    "value", [b"+5", b"-1", b"5 5", b"0x5", b"five"], ids=["plus", "neg", "two", "hex", "word"]
)
def test_malformed_content_length_is_refused(server, value):
    raw = b"POST /s HTTP/1.1\r\nHost: t\r\nContent-Length: " + value + b"\r\n\r\nhello"
    assert refused(server, raw) == 400


@pytest.mark.parametrize(
    "coding",
    [b"chunked, identity", b"gzip", b"chunkedx", b"\x0bchunked"],
    ids=["two-codings", "gzip", "lookalike", "vertical-tab"],
)
def test_transfer_codings_other_than_chunked_are_refused(server, coding):
    raw = b"POST /s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: " + coding + b"\r\n\r\n0\r\n\r\n"
    assert refused(server, raw) in (400, 501)


def test_transfer_encoding_in_http10_is_refused(server):
    raw = b"POST /s HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert refused(server, raw) == 400


def test_whitespace_before_the_colon_is_refused(server):
    raw = b"POST /s HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
    assert refused(server, raw) == 400


def test_folded_header_line_is_refused(server):
    raw = b"GET /s HTTP/1.1\r\nHost: t\r\nX-Long: a\r\n  continued\r\n\r\n"
    assert refused(server, raw) == 400


@pytest.mark.parametrize("size_line", [b"zz", b"-1", b"1 1", b"", b"10000000000000000"], ids=str)
def test_malformed_chunk_size_is_400_and_close(server, size_line):
    raw = (
        b"POST /chunk HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        + size_line
        + b"\r\nabc\r\n0\r\n\r\n"
    )
    assert refused(server, raw) == 400


def test_chunk_data_longer_than_its_size_is_400(server):
    raw = (
        b"POST /chunk HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabcdef\r\n0\r\n\r\n"
    )
    assert refused(server, raw) == 400


def test_underscored_header_names_do_not_reach_the_environ(start_wsgi):
    seen = []

    def spy(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append({k: v for k, v in environ.items() if k.startswith("HTTP_X")})
        start_response("200 OK", [])
        return [b""]

    server = start_wsgi(spy)
    request(server.address, get("/", "X-Forwarded-For: good\r\nX_Forwarded_For: forged\r\n"))
    assert seen == [{"HTTP_X_FORWARDED_FOR": "good"}]


# -- response splitting ------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Evil", "a\r\nSet-Cookie: stolen=1")],
        [("X-Evil", "a\nb")],
        [("X Evil", "a")],
        [("X-Evil:", "a")],
        [("Transfer-Encoding", "chunked")],
    ],
    ids=["crlf", "lf", "space-in-name", "colon-in-name", "transfer-encoding"],
)
def test_bad_response_headers_from_the_app_become_a_500(start_wsgi, headers):
    def evil(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", headers)
        return [b"body"]

    server = start_wsgi(evil)
    with connect(server.address) as sock:
        sock.sendall(get())
        raw = read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert b"stolen" not in raw and b"X-Evil" not in raw


def test_crlf_in_the_status_becomes_a_500(start_wsgi):
    def evil(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK\r\nSet-Cookie: x=1", [])
        return [b""]

    server = start_wsgi(evil)
    assert request(server.address, get()).status == 500


def test_a_header_line_over_8_kib_is_431_by_default(server):
    # 40 KB in one header stays under max_header_size (the whole head) but over
    # the per-line default of production servers.
    raw = b"GET / HTTP/1.1\r\nHost: t\r\nCookie: " + b"c" * 40_000 + b"\r\n\r\n"
    assert refused(server, raw) == 431
    assert "/" not in calls


def test_a_header_line_at_the_limit_is_accepted(server):
    line = b"X-Fill: " + b"f" * (8190 - len(b"X-Fill: "))
    response = request(server.address, b"GET /fits HTTP/1.1\r\nHost: t\r\n" + line + b"\r\n\r\n")
    assert response.status == 200


def test_the_header_line_limit_is_configurable(start_wsgi):
    server = start_wsgi(app, max_header_line=100_000)
    raw = b"GET /big HTTP/1.1\r\nHost: t\r\nCookie: " + b"c" * 40_000 + b"\r\n\r\n"
    assert request(server.address, raw).status == 200
