"""Fuzzing the request side of WSGIServer: heads, chunk sizes, bodies, and the real server.

Properties:

* ``parse_head``, ``parse_chunk_size``, ``Reader.read_head`` and ``Body`` (pure
  functions, or fed by a fake socket) either succeed or raise ``HTTPError`` with
  a documented status (docs/server.md) -- never another exception; what they
  accept is unambiguous (one framing, no CR/LF/NUL in a value); well-formed
  input round-trips whatever the segmentation, and a body never consumes a
  byte past its own end (the next pipelined request stays intact);
* a real ``WSGIServer`` on 127.0.0.1 answers arbitrary and mutated byte
  streams only with documented statuses, closes the connection after a
  refusal (no response follows it), never hangs (clients have timeouts; the
  client half-closes, so no server timeout is involved), and serves the next
  client; a pipeline whose framing is mutated never lets a request after the
  broken one reach the application (request smuggling).

Examples per property are small by default (the whole file runs in seconds).
For a longer run set ``GREENPATCH_FUZZ_EXAMPLES``, e.g.
``GREENPATCH_FUZZ_EXAMPLES=20000 .venv/bin/pytest tests/server/test_fuzz_http.py``.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenpatch.server._body import Body
from greenpatch.server._http import (
    ClientGone,
    HTTPError,
    Limits,
    Reader,
    Request,
    parse_chunk_size,
    parse_head,
)
from tests._fuzz import fuzz

from ._client import connect, get, request

#: Statuses the server answers to a request it refuses (docs/server.md).
REFUSALS = {400, 413, 414, 417, 431, 501, 505}
LIMITS = Limits(max_request_line=200, max_header_size=1000, max_headers=12, header_timeout=None)
TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def check_request(request: Request) -> None:
    """What an accepted head must satisfy, whatever the input was."""
    assert not (request.chunked and request.content_length is not None)
    assert request.content_length is None or request.content_length >= 0
    if request.version == "HTTP/1.1":
        assert "HTTP_HOST" in request.environ
    for key, value in request.environ.items():
        assert key.isupper() and "-" not in key, key
        assert "\r" not in value and "\n" not in value and "\x00" not in value


def parse_or_refuse(head: bytes) -> Request | None:
    try:
        request = parse_head(head, LIMITS)
    except HTTPError as exc:
        assert exc.status in REFUSALS, exc
        return None
    check_request(request)
    return request


# -- strategies -----------------------------------------------------------------------

tokens = st.text(TOKEN, min_size=1, max_size=12).map(str.encode)
# Visible ASCII plus obs-text, no leading/trailing whitespace (the parser strips it).
field_values = st.binary(max_size=30).map(
    lambda raw: bytes(b for b in raw if b == 0x09 or 0x20 <= b != 0x7F).strip(b" \t")
)
targets = st.text("abcxyz0123456789/%?=&.-_~:@!$'()*+,;", min_size=0, max_size=30).map(
    lambda path: ("/" + path).encode()
)


@st.composite
def well_formed_heads(draw: Any) -> tuple[bytes, dict[str, Any]]:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE"]) | tokens)
    target = draw(targets)
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    names = st.sampled_from([b"Accept", b"User-Agent", b"X-Custom", b"Cookie"]) | tokens.filter(
        lambda name: (
            b"_" not in name
            and name.lower()
            not in (
                b"host",
                b"content-length",
                b"transfer-encoding",
                b"expect",
                b"connection",
            )
        )
    )
    headers = draw(st.lists(st.tuples(names, field_values), max_size=6))
    if version == b"HTTP/1.1" or draw(st.booleans()):
        headers.insert(draw(st.integers(0, len(headers))), (b"Host", b"example.test"))
    body = draw(st.sampled_from(["none", "length", "chunked"]))
    if body == "length":
        headers.append((b"Content-Length", str(draw(st.integers(0, 10**6))).encode()))
    elif body == "chunked" and version == b"HTTP/1.1":
        headers.append((b"Transfer-Encoding", b"chunked"))
    lines = [b" ".join((method, target, version))]
    lines += [name + b":" + draw(st.sampled_from([b"", b" ", b"\t"])) + v for name, v in headers]
    return b"\r\n".join(lines), {"method": method, "target": target, "headers": headers}


INTERESTING = [b"\r", b"\n", b"\r\n", b" ", b"\t", b"\x00", b":", b",", b"\x7f", b"\xff", b"_"]
HOSTILE_LINES = [
    b"Content-Length: 5",
    b"Content-Length: 7",
    b"Content-Length: 5, 7",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding : chunked",
    b" folded",
    b"Host: second",
    b"Expect: 100-continue",
    b"Expect: other",
    b"Connection: close, upgrade",
    b"X_Forwarded_For: forged",
]


@st.composite
def mutated(draw: Any, data: bytes) -> bytes:
    """``data`` after a few random edits: bytes, lines, duplicates, hostile header lines."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "delete", "replace", "dup-line", "add-line"]))
        at = draw(st.integers(0, len(out)))
        if kind == "insert":
            out[at:at] = draw(st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=3))
        elif kind == "delete":
            del out[at : at + draw(st.integers(1, 4))]
        elif kind == "replace" and out:
            out[min(at, len(out) - 1)] = draw(st.integers(0, 255))
        elif kind == "dup-line":
            lines = bytes(out).split(b"\r\n")
            line = draw(st.sampled_from(lines))
            lines.insert(draw(st.integers(1, len(lines))) if len(lines) > 1 else 1, line)
            out = bytearray(b"\r\n".join(lines))
        elif kind == "add-line":
            lines = bytes(out).split(b"\r\n")
            lines.insert(max(1, min(at, len(lines))), draw(st.sampled_from(HOSTILE_LINES)))
            out = bytearray(b"\r\n".join(lines))
    return bytes(out)


mutated_heads = well_formed_heads().flatmap(lambda pair: mutated(pair[0]))


# -- parse_head -------------------------------------------------------------------------


@fuzz(250)
@given(st.binary(max_size=400))
def test_parse_head_on_arbitrary_bytes_accepts_or_refuses_with_a_documented_status(head):
    parse_or_refuse(head)


@fuzz(120)
@given(mutated_heads)
def test_parse_head_on_mutated_requests_accepts_or_refuses_with_a_documented_status(head):
    parse_or_refuse(head)


@fuzz(80)
@given(well_formed_heads())
def test_well_formed_heads_parse_to_what_was_sent(pair):
    head, sent = pair
    request = parse_or_refuse(head)
    assert request is not None, head
    assert request.method == sent["method"].decode()
    assert request.target == sent["target"]
    seen: dict[str, list[str]] = {}
    for name, value in sent["headers"]:
        seen.setdefault(name.decode().upper().replace("-", "_"), []).append(value.decode("latin-1"))
    for key, values in seen.items():
        if key in ("CONTENT_LENGTH", "TRANSFER_ENCODING"):
            continue
        environ_key = key if key == "CONTENT_TYPE" else "HTTP_" + key
        separator = "; " if key == "COOKIE" else ","
        assert request.environ[environ_key] == separator.join(values)


def test_parse_head_refusals_carry_the_documented_statuses():
    # Anchors for the property above: each documented status is reachable.
    cases = {
        b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: t": 414,
        b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"b" * 1000: 431,
        b"GET / HTTP/1.1\r\nHost: t" + b"\r\nX: 1" * 20: 431,
        b"GET / HTTP/1.1\r\nHost: t\r\nExpect: x": 417,
        b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip": 501,
        b"GET / HTTP/3.0\r\nHost: t": 505,
        b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2": 400,
    }
    for head, status in cases.items():
        with pytest.raises(HTTPError) as caught:
            parse_head(head, LIMITS)
        assert caught.value.status == status


# -- chunk sizes ----------------------------------------------------------------------


@fuzz(300)
@given(st.binary(max_size=30))
def test_chunk_size_line_is_a_size_or_a_400(line):
    try:
        size = parse_chunk_size(line)
    except HTTPError as exc:
        assert exc.status == 400
    else:
        assert 0 <= size < 16**15
        assert line.endswith(b"\r\n")


@fuzz(150)
@given(
    st.integers(0, 16**15 - 1),
    st.booleans(),
    st.sampled_from([b"", b" ", b"\t "]),
    st.sampled_from([b"", b";ext", b';a=1;b="x y"']),
)
def test_chunk_size_lines_round_trip(size, upper, space, extension):
    digits = (b"%X" if upper else b"%x") % size
    assert parse_chunk_size(digits + space + extension + b"\r\n") == size


# -- the reader and the body, over a fake socket ---------------------------------------


class SegmentedSocket:
    """Hands out ``data`` in the given segment sizes, then EOF: ``recv_timeout`` only."""

    def __init__(self, data: bytes, sizes: list[int]) -> None:
        self.rest = data
        self.sizes = sizes

    def recv_timeout(self, bufsize: int, timeout: float | None) -> bytes:
        size = self.sizes.pop(0) if self.sizes else len(self.rest)
        data, self.rest = self.rest[: min(size, bufsize)], self.rest[min(size, bufsize) :]
        return data


segments = st.lists(st.integers(1, 40), max_size=30)


def encode_chunked(body: bytes, cuts: list[int], extensions: Any, trailers: list[bytes]) -> bytes:
    out = []
    start = 0
    for cut in sorted({c % (len(body) + 1) for c in cuts} | {len(body)}):
        piece = body[start:cut]
        start = cut
        if piece:
            out.append(b"%x%s\r\n%s\r\n" % (len(piece), extensions, piece))
    out.append(b"0" + extensions + b"\r\n")
    out.extend(line + b"\r\n" for line in trailers)
    out.append(b"\r\n")
    return b"".join(out)


def read_with(body: Body, ops: list[int]) -> bytes:
    """Read a whole body through a mix of read(n), readline() and read()."""
    got = []
    for op in ops:
        if op == 0:
            got.append(body.readline())
        else:
            got.append(body.read(op))
    got.append(body.read())
    return b"".join(got)


trailer_lines = st.lists(st.sampled_from([b"X-Trailer: 1", b"Expires: never", b"A:"]), max_size=3)
suffixes = st.sampled_from([b"", b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n", b"\r\n", b"0\r\n\r\n"])


@fuzz(120)
@given(
    st.binary(max_size=300),
    st.lists(st.integers(0, 300), max_size=6),
    st.sampled_from([b"", b";x=1", b"; y"]),
    trailer_lines,
    suffixes,
    segments,
    st.lists(st.integers(0, 50), max_size=8),
)
def test_chunked_body_round_trips_and_never_reads_past_its_end(
    body, cuts, extension, trailers, suffix, sizes, ops
):
    wire = encode_chunked(body, cuts, extension, trailers) + suffix
    sock = SegmentedSocket(wire, sizes)
    reader = Reader(sock, None)  # type: ignore[arg-type]
    stream = Body(reader, None, True, None, None)
    assert read_with(stream, ops) == body
    assert stream.finished and stream.error is None
    assert reader.buffer + sock.rest == suffix


@fuzz(150)
@given(st.binary(max_size=300), suffixes, segments, st.lists(st.integers(0, 50), max_size=8))
def test_content_length_body_round_trips_and_never_reads_past_its_end(body, suffix, sizes, ops):
    sock = SegmentedSocket(body + suffix, sizes)
    reader = Reader(sock, None)  # type: ignore[arg-type]
    stream = Body(reader, len(body), False, None, None)
    assert read_with(stream, ops) == body
    assert reader.buffer + sock.rest == suffix


@st.composite
def mutated_chunked(draw: Any) -> bytes:
    body = draw(st.binary(max_size=100))
    wire = encode_chunked(body, draw(st.lists(st.integers(0, 100), max_size=4)), b"", [])
    return bytes(draw(mutated(wire)))


@fuzz(150)
@given(st.one_of(mutated_chunked(), st.binary(max_size=200)), segments, st.integers(1, 200))
def test_broken_chunked_bodies_fail_only_with_a_documented_status(wire, sizes, max_size):
    reader = Reader(SegmentedSocket(wire, sizes), None)  # type: ignore[arg-type]
    stream = Body(reader, None, True, max_size, None)
    try:
        data = stream.read()
    except HTTPError as exc:
        assert exc.status in (400, 413, 431), exc
        assert stream.error is exc and stream.finished
        assert stream.read() == b""  # a failed body stays over
    else:
        assert len(data) <= max_size and stream.error is None


@fuzz(80)
@given(well_formed_heads(), st.integers(0, 3), segments, suffixes)
def test_read_head_is_the_same_whatever_the_segmentation(pair, blank_lines, sizes, suffix):
    head = pair[0]
    wire = b"\r\n" * blank_lines + head + b"\r\n\r\n" + suffix
    sock = SegmentedSocket(wire[1:], sizes)
    reader = Reader(sock, None)  # type: ignore[arg-type]
    reader.buffer = wire[:1]  # the server only reads a head once some bytes arrived
    limits = Limits(max_header_size=10**6, max_request_line=10**6, header_timeout=None)
    assert reader.read_head(limits) == head
    assert reader.buffer + sock.rest == suffix


@fuzz(250)
@given(st.binary(min_size=1, max_size=600), segments)
def test_read_head_on_arbitrary_bytes_returns_refuses_or_sees_the_client_leave(wire, sizes):
    reader = Reader(SegmentedSocket(wire[1:], sizes), None)  # type: ignore[arg-type]
    reader.buffer = wire[:1]
    try:
        head = reader.read_head(LIMITS)
    except HTTPError as exc:
        assert exc.status in (414, 431), exc
    except ClientGone:
        while wire.startswith(b"\r\n"):  # blank lines before a request are skipped
            wire = wire[2:]
        assert b"\r\n\r\n" not in wire
    else:
        assert b"\r\n\r\n" not in head and head + b"\r\n\r\n" in wire


# -- a real server over loopback --------------------------------------------------------

seen_paths: list[str] = []


def recording_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    seen_paths.append(environ["PATH_INFO"])
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok:%d" % len(body)]


@pytest.fixture
def fuzz_server(start_wsgi):
    seen_paths.clear()
    return start_wsgi(
        recording_app,
        max_body_size=100_000,
        max_headers=20,
        header_timeout=5,
        keepalive_timeout=5,
        read_timeout=5,
    )


def exchange(address: Any, data: bytes) -> tuple[bytes, bool]:
    """Send ``data``, half-close, read to the end; (bytes read, whether reset)."""
    with connect(address) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server refused and closed before taking it all
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return b"".join(chunks), False
                chunks.append(chunk)
        except ConnectionResetError:
            return b"".join(chunks), True


def split_responses(raw: bytes, reset: bool) -> list[int]:
    """The statuses of the responses in ``raw``; checks framing and close-after-refusal."""
    statuses = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            assert reset, f"truncated response head {raw[:200]!r}"
            break
        lines = head.split(b"\r\n")
        assert lines[0].startswith(b"HTTP/1.1 "), lines[0]
        status = int(lines[0].split(b" ")[1])
        headers = dict(line.lower().split(b": ", 1) for line in lines[1:])
        assert b"transfer-encoding" not in headers  # the app answers one-item lists
        length = 0 if status < 200 else int(headers[b"content-length"])
        if len(rest) < length:
            assert reset, "truncated response body"
            break
        statuses.append(status)
        raw = rest[length:]
        if status >= 400:
            assert headers.get(b"connection") == b"close"
            assert raw == b"", f"bytes after a refusal: {raw[:200]!r}"
    return statuses


@fuzz(80)
@given(data=st.one_of(st.binary(max_size=300), mutated_heads.map(lambda h: h + b"\r\n\r\n")))
def test_server_answers_any_bytes_with_documented_statuses_and_keeps_serving(fuzz_server, data):
    raw, reset = exchange(fuzz_server.address, data)
    for status in split_responses(raw, reset):
        assert status in REFUSALS | {100, 200}, status
    assert request(fuzz_server.address, get("/after")).status == 200


HOST = b"\r\nHost: t"
CL = b"Content-Length: "
#: name: (bytes of the broken request's head, their replacement, status, whether the app sees it)
FRAMING_BREAKS = {
    "cl-and-te": (HOST, HOST + b"\r\nTransfer-Encoding: chunked", 400, False),
    "te-and-cl": (HOST, HOST + b"\r\nTransfer-Encoding: chunked\r\n" + CL + b"1", 400, False),
    "two-lengths": (HOST, HOST + b"\r\n" + CL + b"99999", 400, False),
    "length-list": (CL, CL + b"99999, ", 400, False),
    "te-gzip": (CL, b"Transfer-Encoding: gzip\r\nX: ", 501, False),
    "space-before-colon": (CL, b"Content-Length : ", 400, False),
    "folded": (HOST, HOST + b"\r\n folded", 400, False),
    "lf-only-line": (HOST, b"\nHost: t", 400, False),
    "plus-length": (CL, CL + b"+", 400, False),
}
BAD_CHUNK_SIZES = [b"zz", b"-1", b"0x5", b"+5", b" 5", b"5 5", b"1" * 16, b""]
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"


@st.composite
def pipelines(draw: Any) -> tuple[bytes, int, str, int, bool]:
    """1-3 POSTs, one of them with broken framing; (wire, index broken, how, status, seen)."""
    count = draw(st.integers(1, 3))
    broken = draw(st.integers(0, count - 1))
    how = draw(st.sampled_from([*FRAMING_BREAKS, "bad-chunk-size"]))
    wire = b""
    for index in range(count):
        body = draw(st.binary(max_size=20)) + draw(st.sampled_from([b"", SMUGGLED]))
        if index == broken and how == "bad-chunk-size":
            size = draw(st.sampled_from(BAD_CHUNK_SIZES))
            head = b"POST /r%d HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked" % index
            wire += head + b"\r\n\r\n" + size + b"\r\n" + body + b"\r\n0\r\n\r\n"
            continue
        head = b"POST /r%d HTTP/1.1\r\nHost: t\r\nContent-Length: %d" % (index, len(body))
        if index == broken:
            old, replacement, _, _ = FRAMING_BREAKS[how]
            head = head.replace(old, replacement)
        wire += head + b"\r\n\r\n" + body
    wire += SMUGGLED
    if how == "bad-chunk-size":
        return wire, broken, how, 400, True
    _, _, status, seen = FRAMING_BREAKS[how]
    return wire, broken, how, status, seen


@fuzz(120)
@given(case=pipelines())
def test_broken_framing_in_a_pipeline_is_refused_and_nothing_after_it_runs(fuzz_server, case):
    wire, broken, how, status, seen = case
    seen_paths.clear()
    raw, reset = exchange(fuzz_server.address, wire)
    assert split_responses(raw, reset) == [200] * broken + [status], how
    expected = [f"/r{i}" for i in range(broken)] + ([f"/r{broken}"] if seen else [])
    assert seen_paths == expected, how
