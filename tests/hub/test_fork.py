"""Real ``os.fork`` (unpatched, the hub API) while greenlets are blocked and the threadpool is busy.

The contract these tests pin down, for a fork from the thread that runs the hub:

* the child's hub works at once: its loop is re-initialised (``ev_loop_fork``),
  and it can spawn, sleep, wait on sockets and use a fresh thread pool;
* the parent's greenlets *exist* in the child, suspended where they were, their
  watchers and timers re-armed on the child's loop.  They wake there only when
  what they wait for happens in the child; a descriptor shared with the parent
  stays quiet as long as nobody writes to it.  A greenlet waiting for a thread
  pool call is woken with ``RuntimeError`` (the thread does not exist in the
  child) instead of hanging.  The child kills what it does not want, or leaves
  with ``os._exit``;
* the parent is unaffected: its blocked greenlets complete when their data
  arrives, and its busy pool call finishes.

A fork from another OS thread leaves the main thread's greenlets behind for good:
they belong to a thread the child does not have, so their waits are dropped and
the child's new main hub adopts libev's default loop.
"""

from __future__ import annotations

import os
import socket
import threading
import traceback
from typing import Callable

import pytest

import greenpatch
from greenpatch import get_hub, sleep, spawn, wait_read
from greenpatch.hub.hub import get_hub_if_exists
from greenpatch.hub.io import waiting_fds
from greenpatch.hub.threadpool import ThreadPool, get_threadpool

WAIT = 30.0

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads


def fork_and_check(child: Callable[[], None]) -> None:
    """Fork; run ``child()`` there and leave with ``os._exit``; fail here with its traceback."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(read_end)
            child()
            code = 0
        except BaseException:
            os.write(write_end, traceback.format_exc().encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as report:
        problem = report.read().decode()  # EOF when the child exits
    waited, status = os.waitpid(pid, 0)
    assert waited == pid
    assert os.waitstatus_to_exitcode(status) == 0, problem or f"status {status}"


def reader(sock: socket.socket) -> bytes:
    """A greenlet blocked on a socket: wait until readable, then read."""
    wait_read(sock.fileno(), timeout=WAIT)
    return sock.recv(100)


def child_can_spawn_sleep_and_ping_pong() -> None:
    """The child's own work: greenlets, timers, a socket pair and the thread pool."""
    sleepers = [spawn(lambda n: (sleep(0.01), n)[1], n) for n in range(20)]
    greenpatch.joinall(sleepers)
    assert [g.value for g in sleepers] == list(range(20))

    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    try:

        def echo() -> None:
            for _ in range(10):
                right.send(reader(right).upper())

        echoer = spawn(echo)
        for n in range(10):
            left.send(b"ping%d" % n)
            assert reader(left) == b"PING%d" % n
        echoer.get(timeout=WAIT)
    finally:
        left.close()
        right.close()
    assert get_threadpool().apply(sum, ([1, 2, 3],)) == 6


def test_child_hub_works_while_parent_greenlets_stay_blocked_on_sockets():
    pairs = [socket.socketpair() for _ in range(3)]
    for a, _ in pairs:
        a.setblocking(False)
    readers = [spawn(reader, a) for a, _ in pairs]
    napper = spawn(sleep, WAIT)
    sleep(0.01)  # all of them reach their waits
    try:

        def child() -> None:
            child_can_spawn_sleep_and_ping_pong()
            # The parent's greenlets exist here, still blocked: nothing was
            # written to their sockets and their timer is far off.
            assert not any(g.ready() for g in readers)
            assert not napper.ready()
            for _ in range(5):
                sleep(0.01)  # give a spurious wake-up every chance to happen
            assert not any(g.ready() for g in readers)
            # The child may dispose of them: each dies at its wait point.
            greenpatch.killall([*readers, napper], timeout=WAIT)
            assert all(g.dead and g.successful() for g in readers)

        fork_and_check(child)
        # The parent never saw any of that: its greenlets are still blocked and
        # complete with their own data.
        assert not any(g.ready() for g in readers)
        for n, (_, b) in enumerate(pairs):
            b.send(b"data%d" % n)
        assert [g.get(timeout=WAIT) for g in readers] == [b"data0", b"data1", b"data2"]
    finally:
        napper.kill()
        greenpatch.killall(readers)
        for a, b in pairs:
            a.close()
            b.close()
    assert not waiting_fds()


def test_fork_from_inside_a_greenlet_continues_in_that_greenlet_in_the_child():
    blocked_a, blocked_b = socket.socketpair()
    blocked_a.setblocking(False)
    blocked = spawn(reader, blocked_a)
    outcome: list[int] = []

    def forker() -> None:
        sleep(0)
        fork_and_check(child_can_spawn_sleep_and_ping_pong)
        outcome.append(1)

    try:
        spawn(forker).get(timeout=WAIT)
        assert outcome == [1]
        blocked_b.send(b"after")
        assert blocked.get(timeout=WAIT) == b"after"
    finally:
        blocked.kill()
        blocked_a.close()
        blocked_b.close()


def test_child_gets_a_fresh_pool_while_the_parent_pool_is_busy():
    pool = ThreadPool(maxsize=2, idle_timeout=WAIT)
    release = threading.Event()
    busy = pool.spawn(release.wait, WAIT)  # occupies a real thread across the fork
    seen: list[object] = []

    def wait_for_busy() -> None:
        try:
            seen.append(busy.get())
        except RuntimeError as exc:
            seen.append(exc)

    waiter = spawn(wait_for_busy)
    sleep(0.01)
    assert pool.size == 1 and not seen
    try:

        def child() -> None:
            # The busy thread does not exist here: the pool starts empty.
            assert pool.size == 0
            # The parent's greenlet that waited on it is told, not left hanging.
            waiter.join(WAIT)
            assert waiter.dead and len(seen) == 1
            assert isinstance(seen[0], RuntimeError), seen
            assert "forked" in str(seen[0])
            # New work runs on new threads, several at once.
            gate = threading.Barrier(2, timeout=WAIT)
            both = [pool.spawn(gate.wait) for _ in range(2)]
            assert sorted(result.get(timeout=WAIT) for result in both) == [0, 1]
            assert pool.apply(pow, (2, 10)) == 1024
            child_can_spawn_sleep_and_ping_pong()

        fork_and_check(child)
        # The parent: the busy call is still running, and finishes normally.
        assert not busy.ready() and not seen
        release.set()
        assert busy.get(timeout=WAIT) is True
        waiter.join(WAIT)
        assert seen == [True]
    finally:
        release.set()
        pool.kill()


def test_fork_from_another_os_thread_gives_the_child_a_main_hub_on_the_default_loop():
    main_hub = get_hub()
    a, b = socket.socketpair()
    a.setblocking(False)
    blocked = spawn(reader, a)  # a greenlet of the main thread, left behind
    sleep(0.01)
    failures: list[str] = []

    def child() -> None:
        # In the child this thread is the main thread; the old main hub is gone
        # with its thread, and its greenlet's wait with it.
        assert get_hub_if_exists() is None
        hub = get_hub()
        assert hub is not main_hub and hub.loop.default
        assert hub.loop is main_hub.loop  # adopted, re-initialised
        # The left-behind greenlet's wait was dropped from the adopted loop: no
        # event can switch into a greenlet of a thread the child does not have.
        assert not [w for w in hub.loop._active.values() if w.waiter is not None]
        child_can_spawn_sleep_and_ping_pong()
        assert not blocked.ready()

    def forker() -> None:
        try:
            fork_and_check(child)
        except BaseException:
            failures.append(traceback.format_exc())

    try:
        thread = threading.Thread(target=forker)
        thread.start()
        thread.join(WAIT)
        assert not thread.is_alive()
        assert not failures, failures[0]
        # The parent's main hub never noticed.
        b.send(b"still here")
        assert blocked.get(timeout=WAIT) == b"still here"
    finally:
        blocked.kill()
        a.close()
        b.close()


def test_fork_from_a_thread_with_its_own_hub_keeps_that_hub_working_in_the_child():
    failures: list[str] = []

    def forker() -> None:
        try:
            own = get_hub()
            spawn(sleep, 0.01).join()  # the thread's hub is live
            napper = spawn(sleep, WAIT)
            sleep(0)

            def child() -> None:
                assert get_hub() is own
                child_can_spawn_sleep_and_ping_pong()
                assert not napper.ready()

            fork_and_check(child)
            napper.kill()
        except BaseException:
            failures.append(traceback.format_exc())
        finally:
            own.destroy()

    thread = threading.Thread(target=forker)
    thread.start()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert not failures, failures[0]


def test_a_deadlock_in_a_child_forked_while_another_thread_ran_raises_loop_exit():
    # CPython keeps counting, in the child, the threads that did not survive the
    # fork; were that figure believed, the wait below would keep the loop alive
    # for ever (a keep-alive for "another thread may set it") instead of raising.
    get_hub()  # a hub exists before the fork, as its fork hook is what notices
    release = threading.Event()
    bystander = threading.Thread(target=release.wait, args=(WAIT,))
    bystander.start()
    try:

        def child() -> None:
            import signal

            signal.alarm(int(WAIT))  # a hang ends the child with SIGALRM, failing the test
            with pytest.raises(greenpatch.LoopExit):
                greenpatch.Event().wait()

        fork_and_check(child)
    finally:
        release.set()
        bystander.join(WAIT)
