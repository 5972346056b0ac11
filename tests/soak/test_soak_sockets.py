"""Soak: 100,000 cooperative socket lifetimes give back every descriptor and watcher.

Run with ``pytest -m soak tests/soak`` (``tox -e soak``).  Each cycle opens a
socket, makes it wait at least once where it can (so its reused watchers are
created and started), and closes it: TCP connects to a loopback listener, reads
that wait for data, reads that time out, and closes that wake a greenlet blocked
in ``recv``.  Afterwards the process holds the descriptors it held before
(``/proc/self/fd``) and the loop the same active watchers and live timers.
Both cooperative socket classes are covered: the patcher's green ``socket``
(used directly, without ``patch_all``) and the servers' ``CooperativeSocket``.
"""

from __future__ import annotations

import errno
import os
import socket as stdlib_socket
from collections.abc import Callable
from typing import Any

import pytest

from greenpatch.hub import get_hub, sleep, spawn
from greenpatch.hub.io import waiting_fds
from greenpatch.hub.loop import Loop
from greenpatch.patcher.green import socket as gsocket
from greenpatch.server import StreamServer
from greenpatch.server._io import CooperativeSocket, SocketClosedError

pytestmark = [pytest.mark.soak, pytest.mark.timeout(600)]

CYCLES = 100_000
#: One read in TIMEOUT_EVERY is meant to time out (after SHORT seconds).
TIMEOUT_EVERY = 100
SHORT = 0.001
LONG = 30.0


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def recv_or_error(sock: Any, size: int) -> Any:
    """``sock.recv(size)``, or the error it raised (returned: the hub would print it)."""
    try:
        return sock.recv(size)
    except OSError as exc:
        return exc


def loop_state(loop: Loop) -> dict[str, Any]:
    return {
        "active watchers and live timers": loop.active_watcher_count,
        "libev watchers": loop.started_watchers,
        "live timers": loop.live_timers,
        "tracked descriptors": waiting_fds(),
    }


def settle() -> None:
    for _ in range(3):
        sleep(0)


class Soak:
    """Runs CYCLES cycles, each picked by ``index % len(kinds)``, and counts outcomes."""

    def __init__(self, kinds: list[Callable[[int], str]]) -> None:
        self.kinds = kinds
        self.outcomes: dict[str, int] = {}

    def run(self) -> None:
        kinds = self.kinds
        for index in range(CYCLES):
            outcome = kinds[index % len(kinds)](index)
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


# -- the patcher's green socket -----------------------------------------------------------


def test_a_hundred_thousand_green_sockets_give_back_descriptors_and_watchers() -> None:
    hub = get_hub()
    settle()
    fds_before = open_descriptors()
    state_before = loop_state(hub.loop)

    listener = gsocket.create_server(("127.0.0.1", 0), backlog=128)
    address = listener.getsockname()

    def serve() -> None:
        while True:
            conn, _ = listener.accept()
            conn.sendall(b"x")
            conn.close()

    server = spawn(serve)

    def tcp_read_to_eof(index: int) -> str:
        client = gsocket.socket()
        client.settimeout(LONG)
        client.connect(address)
        # The server greenlet has not run yet: the first recv waits on the watcher.
        assert client.recv(16) == b"x"
        assert client.recv(16) == b""
        client.close()
        return "tcp read"

    def pair_read(index: int) -> str:
        a, b = gsocket.socketpair()
        try:
            if index % TIMEOUT_EVERY == 1:
                a.settimeout(SHORT)
                with pytest.raises(stdlib_socket.timeout):
                    a.recv(1)
                return "read timed out"
            a.settimeout(LONG)
            spawn(b.sendall, b"y")
            assert a.recv(1) == b"y"
            return "pair read"
        finally:
            a.close()
            b.close()

    def close_under_a_reader(index: int) -> str:
        a, b = gsocket.socketpair()
        reader = spawn(recv_or_error, a, 1)
        sleep(0)  # the reader blocks in recv
        a.close()
        error = reader.get(timeout=LONG)
        assert isinstance(error, OSError) and error.errno == errno.EBADF
        b.close()
        return "closed under a reader"

    def open_close(index: int) -> str:
        gsocket.socket().close()
        return "opened and closed"

    soak = Soak([tcp_read_to_eof, pair_read, tcp_read_to_eof, close_under_a_reader, open_close])
    try:
        soak.run()
    finally:
        server.kill()
        listener.close()
    settle()
    print(soak.outcomes)
    assert soak.outcomes["read timed out"] >= CYCLES // 5 // TIMEOUT_EVERY
    assert open_descriptors() == fds_before
    assert loop_state(hub.loop) == state_before


# -- the servers' CooperativeSocket ---------------------------------------------------------


def _echo(sock: CooperativeSocket, address: Any) -> None:
    while data := sock.recv(65536):
        sock.sendall(data)


def test_a_hundred_thousand_cooperative_sockets_give_back_descriptors_and_watchers() -> None:
    hub = get_hub()
    settle()
    fds_before = open_descriptors()
    state_before = loop_state(hub.loop)

    server = StreamServer(("127.0.0.1", 0), _echo, backlog=128)
    server.start()
    address = server.address

    def tcp_echo(index: int) -> str:
        raw = stdlib_socket.create_connection(address, timeout=LONG)
        client = CooperativeSocket(raw, timeout=LONG)
        payload = index.to_bytes(4, "big")
        client.sendall(payload)
        # Half-close: the handler sees the end after the echo and closes first,
        # so the TIME_WAIT is the server's and the client's ports stay free.
        client.shutdown(stdlib_socket.SHUT_WR)
        # The handler has not run yet: the read waits on the socket's watcher.
        assert client.recv(16) == payload
        assert client.recv(16) == b""
        client.close()
        return "tcp echo"

    def pair_read(index: int) -> str:
        raw_a, raw_b = stdlib_socket.socketpair()
        a, b = CooperativeSocket(raw_a), CooperativeSocket(raw_b)
        try:
            if index % TIMEOUT_EVERY == 1:
                with pytest.raises(stdlib_socket.timeout):
                    a.recv_timeout(1, SHORT)
                return "read timed out"
            a.settimeout(LONG)
            spawn(b.sendall, b"y")
            assert a.recv(1) == b"y"
            return "pair read"
        finally:
            a.close()
            b.close()

    def close_under_a_reader(index: int) -> str:
        raw_a, raw_b = stdlib_socket.socketpair()
        a = CooperativeSocket(raw_a)
        reader = spawn(recv_or_error, a, 1)
        sleep(0)  # the reader blocks in recv
        a.close()
        assert isinstance(reader.get(timeout=LONG), SocketClosedError)
        raw_b.close()
        return "closed under a reader"

    soak = Soak([tcp_echo, pair_read, tcp_echo, close_under_a_reader])
    try:
        soak.run()
    finally:
        server.stop(timeout=LONG)
    settle()
    print(soak.outcomes)
    assert soak.outcomes["read timed out"] >= CYCLES // 4 // TIMEOUT_EVERY
    assert len(server.pool) == 0
    assert open_descriptors() == fds_before
    assert loop_state(hub.loop) == state_before
