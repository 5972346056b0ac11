"""A custom exception thrown into a greenlet at every kind of wait point.

``Greenlet.kill(exception=Boom(...))`` while the greenlet is blocked: the
exception must be raised *at the wait* (the greenlet's own ``except Boom`` around
the blocking call sees it), propagate out of the greenlet (``g.exception``), leave
the primitive consistent (the next user is served normally), and leave no
watcher, descriptor wait or timer of the wait behind.

(tests/hub/test_kill_in_waits.py covers GreenletExit kills and leaks; this is
the table for other exceptions.)
"""

from __future__ import annotations

import contextlib
import socket as stdlib_socket
import threading
from collections.abc import Iterator
from typing import Any, Callable

import pytest

import greenpatch
from greenpatch import (
    AsyncResult,
    Event,
    Lock,
    Queue,
    Semaphore,
    Timeout,
    get_hub,
    get_threadpool,
    sleep,
    spawn,
)
from greenpatch.hub.io import waiting_fds
from greenpatch.patcher.green import select as green_select
from greenpatch.patcher.green import socket as green_socket
from greenpatch.patcher.green import subprocess as green_subprocess

WAIT = 30.0

Case = Iterator[tuple[Callable[[], Any], Callable[[], None]]]


class Boom(Exception):
    """The exception thrown in; nothing else raises it."""


# Each case yields (block, next_user): ``block()`` waits until killed;
# ``next_user()`` proves the primitive still serves others afterwards.


@contextlib.contextmanager
def case_sleep() -> Case:
    yield (lambda: sleep(WAIT)), (lambda: sleep(0.001))


@contextlib.contextmanager
def case_event_wait() -> Case:
    event = Event()

    def next_user() -> None:
        other = spawn(event.wait, WAIT)
        sleep(0)
        event.set()
        assert other.get(timeout=WAIT) is True

    yield (lambda: event.wait()), next_user


@contextlib.contextmanager
def case_async_result_get() -> Case:
    result = AsyncResult()

    def next_user() -> None:
        other = spawn(result.get, timeout=WAIT)
        sleep(0)
        result.set(42)
        assert other.get(timeout=WAIT) == 42 and result.get() == 42

    yield (lambda: result.get()), next_user


@contextlib.contextmanager
def case_lock_acquire() -> Case:
    lock = Lock()
    lock.acquire()

    def next_user() -> None:
        assert lock.locked()
        other = spawn(lock.acquire, timeout=WAIT)
        sleep(0)
        lock.release()  # goes to the waiter behind the killed one
        assert other.get(timeout=WAIT) is True and lock.locked()
        lock.release()
        assert lock.acquire(blocking=False)
        lock.release()

    yield (lambda: lock.acquire()), next_user


@contextlib.contextmanager
def case_semaphore_acquire() -> Case:
    semaphore = Semaphore(2)
    semaphore.acquire()
    semaphore.acquire()

    def next_user() -> None:
        other = spawn(semaphore.acquire, timeout=WAIT)
        sleep(0)
        semaphore.release()
        assert other.get(timeout=WAIT) is True
        semaphore.release()
        semaphore.release()
        assert semaphore.acquire(blocking=False) and semaphore.acquire(blocking=False)
        assert not semaphore.acquire(blocking=False)  # the killed one took no slot

    yield (lambda: semaphore.acquire()), next_user


@contextlib.contextmanager
def case_queue_get() -> Case:
    queue: Queue[int] = Queue()

    def next_user() -> None:
        assert queue.getters == 0
        other = spawn(queue.get, timeout=WAIT)
        sleep(0)
        queue.put(7)
        assert other.get(timeout=WAIT) == 7 and queue.qsize() == 0

    yield (lambda: queue.get()), next_user


@contextlib.contextmanager
def case_queue_put() -> Case:
    queue: Queue[str] = Queue(1)
    queue.put("first")

    def next_user() -> None:
        assert queue.putters == 0
        assert queue.get() == "first" and queue.empty()  # the killed put added nothing
        queue.put("second")
        assert queue.get(timeout=WAIT) == "second"

    yield (lambda: queue.put("killed")), next_user


@contextlib.contextmanager
def case_greenlet_join() -> Case:
    release = Event()
    target = spawn(release.wait, WAIT)

    def next_user() -> None:
        assert not target.ready()
        joiner = spawn(target.join, WAIT)
        sleep(0)
        release.set()
        joiner.get(timeout=WAIT)
        assert target.get(timeout=WAIT) is True

    try:
        yield (lambda: target.join()), next_user
    finally:
        target.kill()


@contextlib.contextmanager
def case_socket_recv() -> Case:
    a, b = green_socket.socketpair()

    def next_user() -> None:
        other = spawn(a.recv, 100)
        sleep(0)
        b.sendall(b"next")
        assert other.get(timeout=WAIT) == b"next"

    with a, b:
        yield (lambda: a.recv(100)), next_user


@contextlib.contextmanager
def case_socket_send() -> Case:
    a, b = green_socket.socketpair()
    chunk = b"x" * (1 << 16)

    def fill() -> None:
        while True:  # until the kernel buffers are full and sendall waits
            a.sendall(chunk)

    def next_user() -> None:
        reader = spawn(_read_until, b, b"next")
        a.sendall(b"next")
        assert reader.get(timeout=WAIT).endswith(b"xnext")

    with a, b:
        yield fill, next_user


def _read_until(sock: Any, end: bytes) -> bytes:
    data = b""
    while not data.endswith(end):
        data += sock.recv(1 << 16)
    return data


@contextlib.contextmanager
def case_socket_accept() -> Case:
    server = green_socket.create_server(("127.0.0.1", 0))

    def next_user() -> None:
        other = spawn(server.accept)
        sleep(0)
        with green_socket.create_connection(server.getsockname(), timeout=WAIT):
            conn, _ = other.get(timeout=WAIT)
            conn.close()

    with server:
        yield (lambda: server.accept()), next_user


@contextlib.contextmanager
def case_socket_connect() -> Case:
    # A listener whose backlog is full: the kernel drops further SYNs, so a
    # connect to it stays pending (on loopback, with nothing leaving the host).
    server = stdlib_socket.create_server(("127.0.0.1", 0), backlog=0)
    address = server.getsockname()
    fillers = []
    try:
        for _ in range(8):
            filler = stdlib_socket.socket()
            filler.setblocking(False)
            filler.connect_ex(address)
            fillers.append(filler)
        client = green_socket.socket()

        def next_user() -> None:
            # The listener drains its backlog: a new connection completes.
            for _ in range(2):
                server.settimeout(WAIT)
                server.accept()[0].close()
            with green_socket.create_connection(address, timeout=WAIT) as fresh:
                assert fresh.getpeername() == address

        with client:
            yield (lambda: client.connect(address)), next_user
    finally:
        for filler in fillers:
            filler.close()
        server.close()


@contextlib.contextmanager
def case_select() -> Case:
    a, b = green_socket.socketpair()

    def next_user() -> None:
        other = spawn(green_select.select, [a], [], [], WAIT)
        sleep(0)
        b.sendall(b"x")
        assert other.get(timeout=WAIT)[0] == [a]

    with a, b:
        yield (lambda: green_select.select([a], [], [])), next_user


@contextlib.contextmanager
def case_threadpool_apply() -> Case:
    pool = get_threadpool()
    gate = threading.Event()

    def next_user() -> None:
        gate.set()  # the abandoned call finishes on its thread
        assert pool.apply(sum, ([1, 2],)) == 3
        assert pool.join(WAIT)

    try:
        yield (lambda: pool.apply(gate.wait, (WAIT,))), next_user
    finally:
        gate.set()


@contextlib.contextmanager
def case_timeout_block() -> Case:
    def block() -> None:
        with Timeout(WAIT):
            Event().wait()

    def next_user() -> None:
        with pytest.raises(Timeout):
            with Timeout(0.01):
                Event().wait()

    yield block, next_user


@contextlib.contextmanager
def case_subprocess_wait() -> Case:
    proc = green_subprocess.Popen(["sleep", "30"])

    def next_user() -> None:
        assert proc.poll() is None
        proc.kill()
        assert proc.wait(timeout=WAIT) == -9

    try:
        yield (lambda: proc.wait()), next_user
    finally:
        if proc.returncode is None:
            proc.kill()
            proc.wait(timeout=WAIT)


CASES = {
    "sleep": case_sleep,
    "Event.wait": case_event_wait,
    "AsyncResult.get": case_async_result_get,
    "Lock.acquire": case_lock_acquire,
    "Semaphore.acquire": case_semaphore_acquire,
    "Queue.get": case_queue_get,
    "Queue.put": case_queue_put,
    "Greenlet.join": case_greenlet_join,
    "socket.recv": case_socket_recv,
    "socket.sendall": case_socket_send,
    "socket.accept": case_socket_accept,
    "socket.connect": case_socket_connect,
    "select": case_select,
    "ThreadPool.apply": case_threadpool_apply,
    "Timeout block": case_timeout_block,
    "Popen.wait": case_subprocess_wait,
}


def loop_state() -> tuple[int, int, int]:
    """Active watchers, live Python timers and descriptors waited on in the current hub."""
    hub = get_hub()
    loop = hub.loop
    timers = loop.live_timers
    return loop.started_watchers, timers, len(waiting_fds())


@pytest.mark.parametrize("make_case", CASES.values(), ids=list(CASES))
def test_custom_exception_thrown_at_a_wait_surfaces_there_and_leaves_it_usable(make_case):
    with make_case() as (block, next_user):
        sleep(0)
        before = loop_state()
        reached: list[bool] = []
        caught: list[BaseException] = []

        def victim() -> None:
            reached.append(True)
            try:
                block()
            except Boom as exc:
                caught.append(exc)  # raised at the wait point, in this greenlet
                raise
            raise AssertionError("the wait returned instead of being interrupted")

        glet = spawn(victim)
        while not reached:
            sleep(0)
        for _ in range(3):
            sleep(0.001)  # well inside the wait (pool threads, subprocesses start)
        assert not glet.ready(), glet.exception
        boom = Boom("thrown at the wait")
        glet.kill(boom, block=True, timeout=WAIT)
        assert glet.dead
        assert glet.exception is boom and caught == [boom]
        with pytest.raises(Boom):
            glet.get()
        sleep(0)
        assert loop_state() == before, "the interrupted wait left a watcher or timer behind"
        next_user()
    # Nothing of the case (nor of its next user) is left either.
    sleep(0)
    assert loop_state()[2] == 0
    assert greenpatch.get_hub().loop.pending_callbacks == 0
