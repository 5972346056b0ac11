"""A WSGI hello world on greenpatch's WSGIServer, with a WebSocket echo at /ws.

python docs/examples/hello_wsgi.py            # then: curl http://127.0.0.1:8000/
"""

from __future__ import annotations

from typing import Any

from greenpatch.server import WebSocket, WebSocketApp, WSGIServer


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!\n"]


def echo(ws: WebSocket, environ: dict[str, Any]) -> None:
    for message in ws:
        ws.send(message)


def app(environ: dict[str, Any], start_response: Any) -> Any:
    if environ["PATH_INFO"] == "/ws":
        return WebSocketApp(echo)(environ, start_response)
    return hello(environ, start_response)


if __name__ == "__main__":
    server = WSGIServer(("127.0.0.1", 8000), app)
    print("serving on http://127.0.0.1:8000/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
