"""StreamServer and DatagramServer: accepting, handlers, bounds, stop, TLS, UDP."""

from __future__ import annotations

import logging
import socket
import ssl
from typing import Any

import pytest

from greenpatch.hub import Greenlet, joinall, sleep, spawn
from greenpatch.hub.event import Event
from greenpatch.server import CooperativeSocket, DatagramServer, SocketClosedError, StreamServer

from ._client import WAIT, connect, in_thread


def echo(sock: CooperativeSocket, address: Any) -> None:
    while True:
        data = sock.recv(65536)
        if not data:
            return
        sock.sendall(data)


def echo_once(address: Any, payload: bytes) -> bytes:
    with connect(address) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
        return b"".join(chunks)


def test_echo_on_a_free_port_reports_the_bound_address(start_stream):
    server = start_stream(echo)
    assert server.address[0] == "127.0.0.1" and server.address[1] > 0
    assert server.started and not server.closed
    assert echo_once(server.address, b"hello") == b"hello"


def test_three_hundred_clients_at_once_are_all_served(start_stream):
    server = start_stream(echo)
    payloads = [f"client {i} ".encode() * 50 for i in range(300)]
    clients = [spawn(echo_once, server.address, p) for p in payloads]
    joinall(clients, raise_error=True)
    assert [c.value for c in clients] == payloads


def test_accepts_an_existing_listening_socket():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    server = StreamServer(listener, echo)
    server.start()
    try:
        assert server.address == listener.getsockname()
        assert echo_once(server.address, b"x" * 100_000) == b"x" * 100_000
    finally:
        server.stop(timeout=0)


def test_error_in_a_handler_is_logged_and_the_server_keeps_serving(start_stream, caplog):
    def handle(sock: CooperativeSocket, address: Any) -> None:
        data = sock.recv(100)
        if data == b"boom":
            raise ValueError("handler failed")
        sock.sendall(data)

    server = start_stream(handle)
    with caplog.at_level(logging.ERROR, logger="greenpatch.server"):
        assert echo_once(server.address, b"boom") == b""
    assert "handler failed" in caplog.text
    assert echo_once(server.address, b"still here") == b"still here"


def test_pool_bounds_concurrent_connections(start_stream):
    release = Event()
    running = []
    peak = []

    def handle(sock: CooperativeSocket, address: Any) -> None:
        running.append(address)
        peak.append(len(running))
        release.wait()
        sock.sendall(b"done")
        running.remove(address)

    server = start_stream(handle, pool=3)
    clients = [spawn(echo_once, server.address, b"") for _ in range(8)]
    while len(running) < 3:
        sleep(0.01)
    sleep(0.05)  # give a (wrong) fourth handler every chance to start
    assert len(running) == 3
    release.set()
    joinall(clients, raise_error=True)
    assert max(peak) == 3
    assert all(c.value == b"done" for c in clients)


def test_stop_lets_handlers_finish_within_the_timeout(start_stream):
    started = Event()
    proceed = Event()

    def handle(sock: CooperativeSocket, address: Any) -> None:
        sock.recv(10)
        started.set()
        proceed.wait()
        sock.sendall(b"finished")

    server = start_stream(handle)
    client = spawn(echo_once, server.address, b"go")
    started.wait(WAIT)
    Greenlet.spawn_later(0.05, proceed.set)
    server.stop(timeout=WAIT)
    assert client.get(timeout=WAIT) == b"finished"
    assert server.closed and not server.started
    with pytest.raises(OSError):
        socket.create_connection(server.address, timeout=1)


def test_stop_kills_handlers_still_running_after_the_timeout(start_stream):
    started = Event()
    killed = []

    def handle(sock: CooperativeSocket, address: Any) -> None:
        started.set()
        try:
            Event().wait()  # forever
        except BaseException as exc:
            killed.append(type(exc).__name__)
            raise

    server = start_stream(handle)
    client = spawn(echo_once, server.address, b"")
    started.wait(WAIT)
    server.stop(timeout=0.05)
    assert killed == ["GreenletExit"]
    assert client.get(timeout=WAIT) == b""  # the server closed the connection


def test_serve_forever_returns_after_stop():
    server = StreamServer(("127.0.0.1", 0), echo)
    Greenlet.spawn_later(0.01, server.stop)
    server.serve_forever()
    assert server.closed


def test_handler_socket_has_the_file_and_socket_api(start_stream):
    seen = {}

    def handle(sock: CooperativeSocket, address: Any) -> None:
        with sock:
            seen["peer"] = sock.getpeername()
            seen["fileno"] = sock.fileno()
            reader = sock.makefile("rb")
            writer = sock.makefile("wb")
            line = reader.readline()
            writer.write(line.upper())
            writer.flush()
            buffer = bytearray(5)
            count = sock.recv_into(buffer)
            sock.send(bytes(buffer[:count]))

    server = start_stream(handle)
    with connect(server.address) as client:
        client.sendall(b"line one\n")
        assert client.recv(100) == b"LINE ONE\n"
        client.sendall(b"12345")
        assert client.recv(100) == b"12345"
        assert seen["peer"] == client.getsockname()
        assert seen["fileno"] > 0


def test_settimeout_on_the_handler_socket_raises_timeout(start_stream):
    errors = []

    def handle(sock: CooperativeSocket, address: Any) -> None:
        sock.settimeout(0.05)
        try:
            sock.recv(10)
        except TimeoutError as exc:
            errors.append(exc)
            sock.sendall(b"timed out")

    server = start_stream(handle)
    with connect(server.address) as client:
        assert client.recv(100) == b"timed out"
    assert len(errors) == 1


def test_close_wakes_a_greenlet_blocked_on_the_socket(start_stream):
    outcome = []
    ready = Event()

    def handle(sock: CooperativeSocket, address: Any) -> None:
        def reader() -> None:
            try:
                sock.recv(10)
            except SocketClosedError:
                outcome.append("woken")

        glet = spawn(reader)
        sleep(0)
        sock.close()
        glet.join(WAIT)
        ready.set()

    server = start_stream(handle)
    with connect(server.address):
        assert ready.wait(WAIT)
    assert outcome == ["woken"]


def test_tls_echo_with_a_generated_certificate(start_stream):
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("localhost", "127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    server = start_stream(echo, ssl_context=server_context)

    def client() -> bytes:
        with socket.create_connection(server.address, timeout=WAIT) as raw:
            with client_context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"secret" * 1000)
                received = b""
                while len(received) < 6000:
                    received += tls.recv(65536)
                return received

    assert in_thread(client) == b"secret" * 1000
    # A client that is not speaking TLS at all does not hurt the server.
    with connect(server.address) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\n\r\n")
        try:
            assert plain.recv(100) == b""  # closed, not served
        except ConnectionResetError:
            pass  # closed with our bytes unread: reset instead of EOF
    assert in_thread(client) == b"secret" * 1000


def test_datagram_server_answers_with_sendto():
    def handle(data: bytes, address: Any) -> None:
        server.sendto(data.upper(), address)

    server = DatagramServer(("127.0.0.1", 0), handle)
    server.start()
    try:
        client = CooperativeSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), timeout=WAIT)
        for word in (b"one", b"two", b"three"):
            client.sendto(word, server.address)
            data, source = client.recvfrom(100)
            assert data == word.upper()
            assert source == server.address
        client.close()
    finally:
        server.stop(timeout=0)
    assert server.closed


def test_datagram_server_error_in_handler_does_not_stop_it(caplog):
    def handle(data: bytes, address: Any) -> None:
        if data == b"bad":
            raise RuntimeError("bad datagram")
        server.sendto(b"ok", address)

    server = DatagramServer(("127.0.0.1", 0), handle)
    server.start()
    try:
        client = CooperativeSocket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), timeout=WAIT)
        with caplog.at_level(logging.ERROR, logger="greenpatch.server"):
            client.sendto(b"bad", server.address)
            client.sendto(b"good", server.address)
            assert client.recvfrom(100)[0] == b"ok"
        assert "bad datagram" in caplog.text
        client.close()
    finally:
        server.stop(timeout=0)


# -- gevent's constructor arguments (issue 16) --------------------------------------


def test_the_third_positional_argument_is_the_backlog_as_in_gevent():
    server = StreamServer(("127.0.0.1", 0), echo, 50)
    try:
        assert server.backlog == 50
        assert type(server.pool).__name__ == "Group"  # not a pool of 50
        server.start()
        assert echo_once(server.address, b"x") == b"x"
    finally:
        server.stop(timeout=0)


def test_spawn_takes_an_int_or_a_pool_and_pool_stays_keyword_only():
    from greenpatch.hub.pool import Pool

    assert StreamServer(("127.0.0.1", 0), echo, None, 3).pool.size == 3
    mine = Pool(4)
    assert StreamServer(("127.0.0.1", 0), echo, spawn=mine).pool is mine
    assert StreamServer(("127.0.0.1", 0), echo, spawn=mine.spawn).pool is mine
    assert StreamServer(("127.0.0.1", 0), echo, pool=5).pool.size == 5
    with pytest.raises(TypeError, match="not both"):
        StreamServer(("127.0.0.1", 0), echo, spawn=2, pool=2)
    with pytest.raises(TypeError, match="spawn=None is not supported"):
        StreamServer(("127.0.0.1", 0), echo, spawn=None)
    with pytest.raises(TypeError):
        StreamServer(("127.0.0.1", 0), echo, None, "default", None)  # type: ignore[misc]


def test_gevent_ssl_args_make_the_context(tmp_path):
    trustme = pytest.importorskip("trustme")
    certificate = trustme.CA().issue_cert("localhost")
    certfile = tmp_path / "cert.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    server = StreamServer(("127.0.0.1", 0), echo, certfile=str(certfile), server_side=True)
    assert isinstance(server.ssl_context, ssl.SSLContext)
    with pytest.raises(TypeError, match="ssl_context="):
        StreamServer(("127.0.0.1", 0), echo, certfile=str(certfile), do_handshake_on_connect=1)


def test_datagram_server_takes_spawn_positionally():
    server = DatagramServer(("127.0.0.1", 0), lambda data, address: None, 2)
    assert server.pool.size == 2  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        DatagramServer(("127.0.0.1", 0), None, "default", 2)  # type: ignore[misc]
