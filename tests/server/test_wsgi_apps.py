"""Real applications on WSGIServer: Flask, and apps wrapped by wsgiref.validate."""

from __future__ import annotations

import json
import warnings
from typing import Any
from wsgiref.validate import validator

import pytest

from ._client import ResponseReader, connect, get, request


def test_flask_application_routes_forms_json_and_streams(start_wsgi):
    flask = pytest.importorskip("flask")
    app = flask.Flask("greenpatch_test")

    @app.route("/hello/<name>")
    def hello(name: str) -> str:
        return f"hello {name}"

    @app.route("/form", methods=["POST"])
    def form() -> Any:
        return flask.jsonify(dict(flask.request.form))

    @app.route("/json", methods=["POST"])
    def echo_json() -> Any:
        return flask.jsonify(flask.request.get_json())

    @app.route("/stream")
    def stream() -> Any:
        return flask.Response((f"{i}," for i in range(5)), mimetype="text/plain")

    server = start_wsgi(app)
    assert request(server.address, get("/hello/world")).body == b"hello world"
    assert request(server.address, get("/missing")).status == 404
    body = b"a=1&b=two"
    form_request = (
        b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert json.loads(request(server.address, form_request).body) == {"a": "1", "b": "two"}
    payload = json.dumps({"k": [1, 2, 3]}).encode()
    chunked = (
        b"POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(payload), payload)
    )
    assert json.loads(request(server.address, chunked).body) == {"k": [1, 2, 3]}
    streamed = request(server.address, get("/stream"))
    assert streamed.headers["transfer-encoding"] == "chunked"
    assert streamed.body == b"0,1,2,3,4,"


def _validated(app: Any) -> Any:
    return validator(app)


def plain(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    stream = environ["wsgi.input"]
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = stream.read(size) if size else b""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def generated(environ: dict[str, Any], start_response: Any) -> Any:
    stream = environ["wsgi.input"]
    lines = list(stream)  # iteration (chunked bodies have no CONTENT_LENGTH)
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"via write,")
    yield b"".join(lines)


def test_wsgiref_validator_finds_nothing_wrong(start_wsgi):
    server = start_wsgi(_validated(plain))
    streaming = start_wsgi(_validated(generated))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # validator reports through warnings too
        with connect(server.address) as sock:
            reader = ResponseReader(sock)
            sock.sendall(get("/a?b=c"))
            assert reader.read().status == 200
            sock.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc")
            assert reader.read().body == b"abc"
            sock.sendall(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert reader.read(head_only=True).status == 200
        chunked = (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"6\r\nline1\n\r\n5\r\nline2\r\n0\r\n\r\n"
        )
        response = request(streaming.address, chunked)
        assert response.body == b"via write,line1\nline2"
