"""Load: an echo StreamServer holds 10,000 concurrent connections and returns every byte.

Run with ``pytest -m soak tests/soak`` (``tox -e soak``).  The server runs in the
test's process; the 10,000 clients (greenlets with green sockets) run in a child
process, so that each process needs about 10,000 descriptors rather than one
process 20,000.  Concurrency is enforced, not hoped for: every handler first
waits until all 10,000 handlers are running, then says "go"; only then do the
clients send.  Each client sends data no other client sends (its number
repeated, some payloads large enough to need many reads and writes) and checks
that exactly those bytes came back.  All on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from greenpatch.hub import Event, get_hub, sleep
from greenpatch.patcher.green import subprocess as gsubprocess
from greenpatch.server import StreamServer
from greenpatch.server._io import CooperativeSocket

pytestmark = [pytest.mark.soak, pytest.mark.timeout(600)]

CONNECTIONS = 10_000
#: Descriptors each process needs beyond one per connection (pytest, the loop, pipes).
SPARE_DESCRIPTORS = 500
#: Asked of listen(); the kernel caps it at net.core.somaxconn.
BACKLOG = 16384
GO = b"!"


def payload(number: int) -> bytes:
    """Connection ``number``'s data: unique to it, 8 bytes to 256 KiB long."""
    unit = number.to_bytes(4, "big") * 2
    repeats = 32768 if number % 100 == 0 else 1 + number % 250
    return unit * repeats


CLIENTS = textwrap.dedent(
    """
    import json, socket, sys
    from greenpatch.hub import Event, Timeout, joinall, spawn
    from greenpatch.patcher.green import socket as gsocket

    port, connections = int(sys.argv[1]), int(sys.argv[2])

    def payload(number):
        unit = number.to_bytes(4, "big") * 2
        repeats = 32768 if number % 100 == 0 else 1 + number % 250
        return unit * repeats

    connected = [0]
    everyone_connected = Event()

    def read_all(sock, chunks):
        while True:
            data = sock.recv(65536)
            if not data:
                return
            chunks.append(data)

    def client(number):
        sock = gsocket.socket()
        sock.settimeout(120)
        try:
            sock.connect(("127.0.0.1", port))
            connected[0] += 1
            if connected[0] == connections:
                everyone_connected.set()
            # The server says go once all its handlers run at the same time.
            assert sock.recv(1) == b"!", "no go from the server"
            data = payload(number)
            chunks = []
            reader = spawn(read_all, sock, chunks)  # reads while we write
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            reader.get(timeout=120)
            return b"".join(chunks) == data
        finally:
            sock.close()

    with Timeout(300):
        clients = [spawn(client, number) for number in range(connections)]
        joinall(clients)
    failed = [n for n, glet in enumerate(clients) if not glet.successful()]
    wrong = [n for n, glet in enumerate(clients) if glet.successful() and not glet.value]
    errors = sorted({repr(clients[n].exception) for n in failed})[:5]
    print(json.dumps({
        "connected": connected[0],
        "echoed": sum(1 for glet in clients if glet.successful() and glet.value),
        "failed": len(failed),
        "wrong": wrong[:20],
        "errors": errors,
    }))
    """
)


@pytest.fixture
def descriptor_limit() -> Iterator[int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit for this test (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = CONNECTIONS + SPARE_DESCRIPTORS
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(
            f"RLIMIT_NOFILE hard limit is {hard}; each process needs {needed} descriptors "
            f"({CONNECTIONS} connections + {SPARE_DESCRIPTORS} spare); raise it with "
            f"`ulimit -Hn {needed}` (as root) or in /etc/security/limits.conf"
        )
    new_soft = needed if hard == resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, new_soft), hard))
    try:
        yield new_soft
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_echo_server_returns_every_byte_to_ten_thousand_concurrent_connections(
    descriptor_limit: int,
) -> None:
    hub = get_hub()
    running = [0]
    peak = [0]
    handled = [0]
    echoed_bytes = [0]
    all_running = Event()

    def echo(sock: CooperativeSocket, address: Any) -> None:
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        try:
            if running[0] == CONNECTIONS:
                all_running.set()
            assert all_running.wait(300), "not every connection arrived"
            sock.sendall(GO)
            while data := sock.recv(65536):
                sock.sendall(data)
                echoed_bytes[0] += len(data)
            handled[0] += 1
        finally:
            running[0] -= 1

    fds_before = len(os.listdir("/proc/self/fd"))
    watchers_before = hub.loop.active_watcher_count
    server = StreamServer(("127.0.0.1", 0), echo, backlog=BACKLOG)
    server.start()
    try:
        # Only stdout piped and no communicate() timeout: the green Popen's
        # cooperative path (see test_kill_in_waits for the two-pipe case).
        clients = gsubprocess.Popen(
            [sys.executable, "-c", CLIENTS, str(server.server_port), str(CONNECTIONS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output, _ = clients.communicate()
        assert clients.returncode == 0, output.decode(errors="replace")[-5000:]
        report = json.loads(output.decode().strip().splitlines()[-1])
    finally:
        server.stop(timeout=30)
    assert report == {
        "connected": CONNECTIONS,
        "echoed": CONNECTIONS,
        "failed": 0,
        "wrong": [],
        "errors": [],
    }
    assert peak[0] == CONNECTIONS
    assert handled[0] == CONNECTIONS
    assert echoed_bytes[0] == sum(len(payload(number)) for number in range(CONNECTIONS))
    for _ in range(3):
        sleep(0)
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert hub.loop.active_watcher_count == watchers_before


def test_the_payloads_are_distinct() -> None:
    # What makes "every byte came back" mean "its own bytes came back".
    seen = {payload(number) for number in range(CONNECTIONS)}
    assert len(seen) == CONNECTIONS
