"""The green socket against the stdlib semantics it replaces, and its cooperation.

These tests use the green class directly, without patching the process."""

from __future__ import annotations

import errno
import os
import socket as stdlib_socket
import tempfile

import pytest

import greenpatch
from greenpatch.patcher.green import socket as gsocket


@pytest.fixture
def listener():
    server = gsocket.create_server(("127.0.0.1", 0))
    yield server
    server.close()


def _echo_once(server):
    conn, _ = server.accept()
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)


def test_green_socket_is_a_stdlib_socket():
    sock = gsocket.socket()
    try:
        assert isinstance(sock, stdlib_socket.socket)
        assert isinstance(sock, stdlib_socket.SocketType)
        assert repr(sock).startswith("<socket.socket fd=")
        assert sock.family == stdlib_socket.AF_INET and sock.type == stdlib_socket.SOCK_STREAM
    finally:
        sock.close()
    assert "[closed]" in repr(sock)


def test_timeout_semantics_match_the_stdlib():
    green, plain = gsocket.socket(), stdlib_socket.socket()
    try:
        for sock in (green, plain):
            assert sock.gettimeout() is None and sock.getblocking()
            sock.settimeout(2.5)
            assert sock.gettimeout() == 2.5 and sock.getblocking()
            sock.setblocking(False)
            assert sock.gettimeout() == 0.0 and not sock.getblocking()
            sock.setblocking(True)
            assert sock.gettimeout() is None
            with pytest.raises(ValueError):
                sock.settimeout(-1)
        assert green.timeout == plain.timeout
    finally:
        green.close()
        plain.close()


def test_default_timeout_applies_to_new_sockets():
    stdlib_socket.setdefaulttimeout(3.0)
    try:
        sock = gsocket.socket()
        assert sock.gettimeout() == 3.0
        sock.close()
    finally:
        stdlib_socket.setdefaulttimeout(None)


def test_echo_roundtrip_with_makefile(listener):
    server = greenpatch.spawn(_echo_once, listener)
    client = gsocket.create_connection(listener.getsockname(), timeout=10)
    with client, client.makefile("rwb") as stream:
        stream.write(b"line one\n")
        stream.flush()
        assert stream.readline() == b"line one\n"
    server.get(timeout=10)


def test_recv_timeout_raises_socket_timeout(listener):
    client = gsocket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    try:
        client.settimeout(0.05)
        with pytest.raises(stdlib_socket.timeout, match="timed out"):
            client.recv(10)
    finally:
        client.close()
        conn.close()


def test_non_blocking_recv_raises_blocking_io_error(listener):
    client = gsocket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    try:
        client.setblocking(False)
        with pytest.raises(BlockingIOError):
            client.recv(10)
    finally:
        client.close()
        conn.close()


def test_sendall_of_a_large_buffer_interleaves_with_the_reader(listener):
    payload = os.urandom(4 * 1024 * 1024)
    received = bytearray()

    def reader():
        conn, _ = listener.accept()
        with conn:
            while len(received) < len(payload):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received.extend(chunk)

    glet = greenpatch.spawn(reader)
    with gsocket.create_connection(listener.getsockname(), timeout=30) as client:
        client.sendall(payload)
    glet.get(timeout=30)
    assert bytes(received) == payload


def test_recv_into_recvfrom_and_sendto_over_udp():
    a = gsocket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM)
    b = gsocket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_DGRAM)
    try:
        a.bind(("127.0.0.1", 0))
        got = []

        def receive():
            data, address = a.recvfrom(100)
            got.append((data, address))
            buffer = bytearray(10)
            count, _ = a.recvfrom_into(buffer)
            got.append(bytes(buffer[:count]))

        glet = greenpatch.spawn(receive)
        greenpatch.sleep(0)
        b.sendto(b"first", a.getsockname())
        b.sendto(b"second", 0, a.getsockname())
        glet.get(timeout=10)
        assert got[0][0] == b"first" and got[0][1][1] == b.getsockname()[1]
        assert got[1] == b"second"
    finally:
        a.close()
        b.close()


def test_connect_to_a_closed_port_raises_connection_refused():
    probe = stdlib_socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    sock = gsocket.socket()
    try:
        with pytest.raises(ConnectionRefusedError):
            sock.connect(("127.0.0.1", port))
        assert gsocket.socket().connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED
    finally:
        sock.close()


def test_connect_resolves_localhost_cooperatively(listener):
    port = listener.getsockname()[1]
    server = greenpatch.spawn(listener.accept)
    client = gsocket.socket()
    client.settimeout(10)
    client.connect(("localhost", port))
    conn, _ = server.get(timeout=10)
    conn.close()
    client.close()


def test_accept_timeout(listener):
    listener.settimeout(0.05)
    with pytest.raises(stdlib_socket.timeout):
        listener.accept()


def test_closing_a_socket_wakes_its_blocked_reader(listener):
    client = gsocket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    errors = []

    def reader():
        try:
            client.recv(10)
        except OSError as exc:
            errors.append(exc.errno)

    glet = greenpatch.spawn(reader)
    greenpatch.sleep(0)
    client.close()
    glet.join(10)
    conn.close()
    assert errors == [errno.EBADF]


def test_dup_detach_and_fromfd(listener):
    client = gsocket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    try:
        client.settimeout(5)
        twin = client.dup()
        assert isinstance(twin, gsocket.socket) and twin.gettimeout() == 5
        twin.sendall(b"via dup")
        assert conn.recv(100) == b"via dup"
        twin.close()
        fd = client.detach()
        again = gsocket.fromfd(fd, stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
        os.close(fd)
        again.sendall(b"via fromfd")
        assert conn.recv(100) == b"via fromfd"
        again.close()
    finally:
        conn.close()


def test_socketpair_is_green_and_works():
    a, b = gsocket.socketpair()
    with a, b:
        assert isinstance(a, gsocket.socket)
        glet = greenpatch.spawn(a.recv, 10)
        greenpatch.sleep(0)
        b.sendall(b"pair")
        assert glet.get(timeout=10) == b"pair"


def test_sendfile_sends_the_whole_file(listener):
    payload = os.urandom(300_000)
    received = bytearray()

    def reader():
        conn, _ = listener.accept()
        with conn:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                received.extend(chunk)

    glet = greenpatch.spawn(reader)
    with tempfile.TemporaryFile() as file:
        file.write(payload)
        file.seek(0)
        with gsocket.create_connection(listener.getsockname(), timeout=30) as client:
            assert client.sendfile(file) == len(payload)
            assert file.tell() == len(payload)
    glet.get(timeout=30)
    assert bytes(received) == payload


def test_fifty_clients_interleave_with_a_ticker(listener):
    ticks = []
    stop = []

    def ticker():
        while not stop:
            ticks.append(1)
            greenpatch.sleep(0.001)

    def serve():
        handlers = []
        for _ in range(50):
            conn, _ = listener.accept()
            handlers.append(greenpatch.spawn(_echo_conn, conn))
        greenpatch.joinall(handlers)

    def client(i):
        with gsocket.create_connection(listener.getsockname(), timeout=30) as sock:
            for _ in range(20):
                sock.sendall(b"x" * 1000)
                got = b""
                while len(got) < 1000:
                    got += sock.recv(1000)
        return i

    tick = greenpatch.spawn(ticker)
    server = greenpatch.spawn(serve)
    clients = [greenpatch.spawn(client, i) for i in range(50)]
    assert sorted(g.get(timeout=60) for g in clients) == list(range(50))
    server.get(timeout=60)
    stop.append(1)
    tick.join(10)
    assert len(ticks) > 1


def _echo_conn(conn):
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)
