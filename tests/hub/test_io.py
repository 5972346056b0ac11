"""The cooperative I/O core (greenpatch.hub.io): wait queues, deadlines, closing, sendall.

The socket calls are exercised through both of their users, the patcher's green
socket and the servers' ``CooperativeSocket``: one implementation, one behaviour.
"""

from __future__ import annotations

import errno
import os
import socket as stdlib_socket
import threading
from array import array
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from greenlet import getcurrent

import greenpatch
from greenpatch.hub import get_hub
from greenpatch.hub.io import (
    READ,
    WRITE,
    IoWaitQueue,
    SocketClosedError,
    SocketTimeout,
    cancel_fd_waits,
    wait_once,
    wait_read,
    waiting_fds,
)
from greenpatch.patcher.green.socket import socket as GreenSocket
from greenpatch.server._io import CooperativeSocket

WAIT = 10.0


def _until(predicate: Callable[[], bool], what: str) -> None:
    deadline = greenpatch.Timeout(WAIT, AssertionError(f"gave up waiting for {what}"))
    with deadline:
        while not predicate():
            greenpatch.sleep(0.001)


def _green_pair() -> tuple[Any, Any]:
    a, b = stdlib_socket.socketpair()
    green_a = GreenSocket(a.family, a.type, a.proto, a.detach())
    green_a.setblocking(True)
    return green_a, b


def _server_pair() -> tuple[Any, Any]:
    a, b = stdlib_socket.socketpair()
    return CooperativeSocket(a), b


@pytest.fixture(params=["green_socket", "server_socket"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    a, b = _green_pair() if request.param == "green_socket" else _server_pair()
    yield a, b
    a.close()
    b.close()


def _readers(sock: Any) -> int:
    queue = sock._io_readers
    return 0 if queue is None else int(queue.waiting)


# -- wait queues -----------------------------------------------------------------------
def test_a_queue_wakes_its_waiters_one_at_a_time_in_arrival_order() -> None:
    a, b = stdlib_socket.socketpair()
    queue = IoWaitQueue(a.fileno(), READ)
    woken: list[str] = []

    def waiter(name: str) -> None:
        queue.wait()
        woken.append(name)
        a.recv(1)  # consume what woke us: the next waiter needs a byte of its own

    try:
        greenlets = [greenpatch.spawn(waiter, name) for name in "ABC"]
        _until(lambda: queue.waiting == 3, "three waiters")
        b.send(b"1")
        _until(lambda: woken == ["A"], "the first waiter")
        assert queue.waiting == 2
        b.send(b"23")
        greenpatch.joinall(greenlets, timeout=WAIT)
        assert woken == ["A", "B", "C"]
        assert a.fileno() not in waiting_fds()
    finally:
        queue.close()
        a.close()
        b.close()


def test_a_woken_waiter_that_leaves_the_data_lets_the_next_one_have_it() -> None:
    # Level-triggered: readiness nobody consumed wakes the next waiter.
    a, b = stdlib_socket.socketpair()
    queue = IoWaitQueue(a.fileno(), READ)
    woken: list[str] = []
    try:
        greenlets = [
            greenpatch.spawn(lambda name=name: (queue.wait(), woken.append(name))) for name in "AB"
        ]
        _until(lambda: queue.waiting == 2, "two waiters")
        b.send(b"x")
        greenpatch.joinall(greenlets, timeout=WAIT)
        assert woken == ["A", "B"]
    finally:
        queue.close()
        a.close()
        b.close()


def test_a_waiter_that_times_out_leaves_the_watcher_to_the_others() -> None:
    a, b = stdlib_socket.socketpair()
    queue = IoWaitQueue(a.fileno(), READ)
    try:
        patient = greenpatch.spawn(queue.wait)
        _until(lambda: queue.waiting == 1, "the patient waiter")
        with pytest.raises(SocketTimeout):
            queue.wait(timeout=0.01)
        assert queue.waiting == 1
        assert a.fileno() in waiting_fds()
        b.send(b"x")
        patient.get(timeout=WAIT)
    finally:
        queue.close()
        a.close()
        b.close()


def test_closing_a_queue_wakes_every_waiter_and_refuses_new_ones() -> None:
    a, b = stdlib_socket.socketpair()
    queue = IoWaitQueue(a.fileno(), READ)
    try:
        greenlets = [greenpatch.spawn(queue.wait) for _ in range(3)]
        _until(lambda: queue.waiting == 3, "three waiters")
        assert queue.close() == 3
        greenpatch.joinall(greenlets, timeout=WAIT)
        assert all(isinstance(g.exception, SocketClosedError) for g in greenlets)
        with pytest.raises(SocketClosedError):
            queue.wait()
        assert a.fileno() not in waiting_fds()
    finally:
        a.close()
        b.close()


def test_cancel_fd_waits_ends_queue_waits_and_bare_waits_on_the_descriptor() -> None:
    a, b = stdlib_socket.socketpair()
    queue = IoWaitQueue(a.fileno(), WRITE)
    try:
        a.setblocking(False)
        while True:  # fill the buffers, so that writing would block
            try:
                a.send(b"x" * 65536)
            except BlockingIOError:
                break
        waits = [greenpatch.spawn(queue.wait), greenpatch.spawn(wait_read, a.fileno())]
        _until(lambda: len(get_hub().loop.io_watchers(a.fileno())) == 2, "both waits")
        assert cancel_fd_waits(a.fileno()) == 2
        greenpatch.joinall(waits, timeout=WAIT)
        assert [type(g.exception) for g in waits] == [SocketClosedError, SocketClosedError]
        assert all(g.exception.errno == errno.EBADF for g in waits)  # type: ignore[union-attr]
        assert waiting_fds() == []
    finally:
        queue.close()
        a.close()
        b.close()


def test_wait_read_on_a_descriptor_closed_meanwhile_raises_ebadf() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        with pytest.raises(OSError) as info:
            wait_read(read_end, timeout=WAIT)
        assert info.value.errno == errno.EBADF
        assert waiting_fds() == []
    finally:
        os.close(write_end)


def _wake_spuriously(glet: Any) -> None:
    """Resume a waiting greenlet although nothing happened (as a stray wake-up would)."""
    if not glet.dead:
        glet.switch()


def test_wait_once_says_whether_readiness_or_a_stray_resume_woke_it() -> None:
    a, b = stdlib_socket.socketpair()
    try:
        waits: list[Any] = []

        def wait() -> bool:
            waits.append(getcurrent())
            return wait_once(a.fileno(), READ)

        ready = greenpatch.spawn(wait)
        _until(lambda: a.fileno() in waiting_fds(), "the first wait")
        b.send(b"x")
        assert ready.get(timeout=WAIT) is True
        a.recv(1)
        stray = greenpatch.spawn(wait)
        _until(lambda: a.fileno() in waiting_fds(), "the second wait")
        get_hub().loop.run_callback(_wake_spuriously, waits[1])
        assert stray.get(timeout=WAIT) is False
        assert waiting_fds() == []
    finally:
        a.close()
        b.close()


# -- the socket calls, through both users ------------------------------------------------
def test_two_greenlets_reading_one_socket_each_get_the_bytes_of_their_turn(pair: Any) -> None:
    a, b = pair
    got: list[tuple[str, bytes]] = []
    first = greenpatch.spawn(lambda: got.append(("A", a.recv(10))))
    _until(lambda: _readers(a) == 1, "reader A")
    second = greenpatch.spawn(lambda: got.append(("B", a.recv(10))))
    _until(lambda: _readers(a) == 2, "reader B")
    b.send(b"x")
    _until(lambda: len(got) == 1, "the first read")
    b.send(b"y")
    greenpatch.joinall([first, second], timeout=WAIT)
    assert got == [("A", b"x"), ("B", b"y")]


def test_a_recv_timeout_bounds_the_whole_call_however_often_it_wakes(pair: Any) -> None:
    # Spurious wake-ups (here: the hub resuming the reader although nothing
    # arrived) each make the call try again; the deadline stays the first one.
    a, _b = pair
    a.settimeout(0.2)
    running: list[Any] = []

    def read() -> bytes:
        running.append(getcurrent())
        return a.recv(10)  # type: ignore[no-any-return]

    reader = greenpatch.spawn(read)
    _until(lambda: _readers(a) == 1, "the reader")
    loop = get_hub().loop
    pokes = 0
    with greenpatch.Timeout(WAIT, AssertionError("the recv never timed out")):
        while not reader.dead:
            loop.run_callback(_wake_spuriously, running[0])
            pokes += 1
            greenpatch.sleep(0.02)
    assert isinstance(reader.exception, TimeoutError)
    assert pokes > 1  # it was woken, and still gave up on time


@pytest.mark.parametrize("typecode", ["i", "d", "B"])
def test_sendall_counts_a_multibyte_buffer_in_bytes(pair: Any, typecode: str) -> None:
    a, b = pair
    data = array(typecode, range(100_000)) if typecode != "B" else array("B", b"z" * 400_000)
    expected = data.tobytes()
    received = bytearray()

    def drain() -> None:
        b.settimeout(WAIT)
        while len(received) < len(expected):
            chunk = b.recv(65536)
            if not chunk:
                break
            received.extend(chunk)

    # The peer is a plain blocking socket: drain it from a real thread.
    thread = threading.Thread(target=drain)
    thread.start()
    a.sendall(data)
    thread.join(WAIT)
    assert not thread.is_alive()
    assert bytes(received) == expected


def test_sendall_of_more_bytes_than_the_socket_takes_at_once_sends_them_all(pair: Any) -> None:
    # bytes take the sockets' one-call path; what the first send leaves goes on
    # after waits, and the reader (a greenlet of the same thread) makes room.
    a, b = pair
    data = bytes(range(256)) * 4000  # ~1 MB: more than the socket buffers hold
    received = bytearray()
    b.setblocking(False)

    def drain() -> None:
        while len(received) < len(data):
            wait_read(b.fileno(), timeout=WAIT)
            received.extend(b.recv(65536))

    reader = greenpatch.spawn(drain)
    a.sendall(data)
    reader.get(timeout=WAIT)
    assert bytes(received) == data
    # and the socket reads as before afterwards: the hot recv path
    b.sendall(b"back")
    assert a.recv(10) == b"back"


def test_closing_a_socket_wakes_its_readers_with_ebadf(pair: Any) -> None:
    a, _b = pair
    readers = [greenpatch.spawn(a.recv, 10) for _ in range(3)]
    _until(lambda: _readers(a) == 3, "three readers")
    a.close()
    greenpatch.joinall(readers, timeout=WAIT)
    assert all(isinstance(g.exception, OSError) for g in readers)
    assert all(g.exception.errno == errno.EBADF for g in readers)  # type: ignore[union-attr]
    assert waiting_fds() == []
