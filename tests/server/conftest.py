"""Fixtures for the server tests: servers on 127.0.0.1, port 0, stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest

from greenpatch.server import StreamServer, WSGIServer


@pytest.fixture
def start_stream() -> Iterator[Callable[..., StreamServer]]:
    servers: list[StreamServer] = []

    def start(handle: Any, **kwargs: Any) -> StreamServer:
        server = StreamServer(("127.0.0.1", 0), handle, **kwargs)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(timeout=0)


@pytest.fixture
def start_wsgi() -> Iterator[Callable[..., WSGIServer]]:
    servers: list[WSGIServer] = []

    def start(app: Any, **kwargs: Any) -> WSGIServer:
        kwargs.setdefault("log", None)
        server = WSGIServer(("127.0.0.1", 0), app, **kwargs)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(timeout=0)
