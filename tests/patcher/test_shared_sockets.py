"""Several waiters on one socket under ``patch_all()``: what is legal with threads works.

Threads are greenlets once the process is patched, so every pattern where
threads share a descriptor -- two readers, a pool of ``accept()``-ers, a reader
and a ``select()`` -- meets the hub's wait queues.  Each script runs in a fresh
interpreter and ends with a bounded join, so a stranded waiter fails the test
instead of hanging it.
"""

from __future__ import annotations

import textwrap

from tests.patcher._interpreter import run_script

# Waits (without sleeping and hoping) until ``count`` greenlets wait to read ``sock``.
_PRELUDE = """
import greenpatch
greenpatch.patch_all()
import socket, threading, time

def until(predicate, what):
    deadline = time.monotonic() + 10
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("gave up waiting for " + what)
        greenpatch.sleep(0.001)

def readers_waiting(sock, count):
    until(lambda: sock._io_readers is not None and sock._io_readers.waiting == count,
          f"{count} readers")
"""


def _run(body: str) -> str:
    return run_script(_PRELUDE + textwrap.dedent(body))


def test_two_readers_of_one_socket_each_get_the_bytes_sent_in_their_turn() -> None:
    out = _run(
        """
        a, b = socket.socketpair()
        out = []
        def reader(name):
            out.append((name, a.recv(10)))
        g1 = greenpatch.spawn(reader, "A")
        readers_waiting(a, 1)
        g2 = greenpatch.spawn(reader, "B")
        readers_waiting(a, 2)
        b.send(b"x")
        until(lambda: len(out) == 1, "the first reader")
        b.send(b"y")
        greenpatch.joinall([g1, g2], timeout=10)
        print(out)
        """
    )
    assert out == "[('A', b'x'), ('B', b'y')]"


def test_a_waiter_whose_timeout_expires_does_not_strand_the_other() -> None:
    out = _run(
        """
        a, b = socket.socketpair()
        got = []
        def patient():
            got.append(a.recv(10))
        def hasty():
            try:
                with greenpatch.Timeout(0.05):
                    a.recv(10)
            except greenpatch.Timeout:
                got.append("timed out")
        g1 = greenpatch.spawn(patient)
        readers_waiting(a, 1)
        g2 = greenpatch.spawn(hasty)
        g2.join(10)
        readers_waiting(a, 1)
        b.send(b"data")
        g1.join(10)
        print(got)
        """
    )
    assert out == "['timed out', b'data']"


def test_a_killed_waiter_does_not_strand_the_other() -> None:
    out = _run(
        """
        a, b = socket.socketpair()
        got = []
        g1 = greenpatch.spawn(lambda: got.append(a.recv(10)))
        readers_waiting(a, 1)
        g2 = greenpatch.spawn(lambda: got.append(a.recv(10)))
        readers_waiting(a, 2)
        g1.kill()
        b.send(b"data")
        g2.join(10)
        print(got, g1.dead, g2.dead)
        """
    )
    assert out == "[b'data'] True True"


def test_threads_accepting_on_one_listener_each_take_one_connection() -> None:
    out = _run(
        """
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        accepted = []
        def acceptor(index):
            conn, _ = listener.accept()
            accepted.append((index, conn.recv(10)))
            conn.close()
        threads = [threading.Thread(target=acceptor, args=(i,)) for i in range(5)]
        for thread in threads:
            thread.start()
        readers_waiting(listener, 5)
        clients = []
        for i in range(5):
            client = socket.create_connection(listener.getsockname())
            client.sendall(b"c%d" % i)
            clients.append(client)
        for thread in threads:
            thread.join(10)
        print(sum(thread.is_alive() for thread in threads), len(accepted),
              sorted(index for index, _ in accepted), sorted(data for _, data in accepted))
        """
    )
    assert out == "0 5 [0, 1, 2, 3, 4] [b'c0', b'c1', b'c2', b'c3', b'c4']"


def test_threads_receiving_from_one_udp_socket_each_take_one_datagram() -> None:
    out = _run(
        """
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", 0))
        received = []
        def receiver():
            data, _ = server.recvfrom(100)
            received.append(data)
        threads = [threading.Thread(target=receiver) for _ in range(4)]
        for thread in threads:
            thread.start()
        readers_waiting(server, 4)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(4):
            client.sendto(b"d%d" % i, server.getsockname())
        for thread in threads:
            thread.join(10)
        print(sum(thread.is_alive() for thread in threads), sorted(received))
        """
    )
    assert out == "0 [b'd0', b'd1', b'd2', b'd3']"


def test_select_and_recv_on_one_descriptor_both_wake() -> None:
    out = _run(
        """
        import select
        a, b = socket.socketpair()
        got = []
        reader = threading.Thread(target=lambda: got.append(a.recv(4)))
        reader.start()
        readers_waiting(a, 1)
        selected = []
        selector = threading.Thread(
            target=lambda: selected.append(select.select([a], [], [], 10)[0] == [a]))
        selector.start()
        loop = greenpatch.get_hub().loop
        until(lambda: len(loop.io_watchers(a.fileno())) == 2, "the select")
        b.send(b"pingpong")  # enough for both: the reader takes 4 bytes, 4 stay readable
        reader.join(10)
        selector.join(10)
        print(got, selected)
        """
    )
    assert out == "[b'ping'] [True]"


def test_closing_a_socket_wakes_every_waiter_with_ebadf() -> None:
    out = _run(
        """
        import errno
        a, b = socket.socketpair()
        errors = []
        def reader():
            try:
                a.recv(10)
            except OSError as exc:
                errors.append(exc.errno)
        greenlets = [greenpatch.spawn(reader) for _ in range(3)]
        readers_waiting(a, 3)
        a.close()
        greenpatch.joinall(greenlets, timeout=10)
        print(errors == [errno.EBADF] * 3, all(g.dead for g in greenlets))
        """
    )
    assert out == "True True"
