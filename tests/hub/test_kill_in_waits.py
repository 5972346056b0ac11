"""A greenlet killed while it is blocked, in every kind of wait, leaves nothing behind.

For each wait: the greenlet is spawned, run until the wait is really set up (a
watcher active, an entry in a waiter line, a timer pending), killed, and then
the hub is checked against the state before the test: the same active watchers
and live timers, no descriptor still tracked for cancellation, no callback left
queued, nothing printed by the hub.  The object waited on must stay usable: the
next greenlet gets the lock, the item, the connection (no lost wake-up, waiter
lines empty).  Locks and queues are also killed *after* being woken, with the
kill queued before the wake-up, which is where a wake-up gets lost.
"""

from __future__ import annotations

import _thread
import gc
import os
import socket as stdlib_socket
import subprocess
import sys
import threading
import weakref
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from greenpatch.hub import (
    Event,
    Greenlet,
    GreenletExit,
    Lock,
    Queue,
    RLock,
    Semaphore,
    ThreadPool,
    Timeout,
    get_hub,
    get_threadpool,
    sleep,
    spawn,
)
from greenpatch.hub.hub import Hub
from greenpatch.hub.io import waiting_fds
from greenpatch.hub.threadpool import _SpawnTask
from greenpatch.patcher.green import os as green_os
from greenpatch.patcher.green import select as green_select
from greenpatch.patcher.green import socket as gsocket
from greenpatch.patcher.green import subprocess as gsubprocess
from greenpatch.server._io import CooperativeSocket

#: sleep(0) rounds allowed for a greenlet to reach its wait (each round runs
#: every ready greenlet until it blocks; one or two are enough).
SETTLE_ROUNDS = 50


def _live_timers(hub: Hub) -> int:
    loop = hub.loop
    return loop.live_timers


def _state(hub: Hub) -> dict[str, Any]:
    """What a finished wait must have given back, as one comparable value."""
    return {
        "active watchers and live timers": hub.loop.active_watcher_count,
        "libev watchers": hub.loop.started_watchers,
        "live timers": _live_timers(hub),
        "tracked descriptors": waiting_fds(),
        "queued callbacks": hub.loop.pending_callbacks,
    }


def _quiesce() -> None:
    """Let every queued callback and ready greenlet run (no time involved)."""
    for _ in range(3):
        sleep(0)


class Baseline:
    def __init__(self, hub: Hub, capfd: pytest.CaptureFixture[str]) -> None:
        self.hub = hub
        self._capfd = capfd
        _quiesce()
        self.before = _state(hub)

    def assert_nothing_left(self) -> None:
        _quiesce()
        assert _state(self.hub) == self.before
        err = self._capfd.readouterr().err
        assert err == "", f"the hub printed an error:\n{err}"


@pytest.fixture
def baseline(capfd: pytest.CaptureFixture[str]) -> Baseline:
    capfd.readouterr()  # only what this test makes counts
    return Baseline(get_hub(), capfd)


def _blocked(run: Callable[..., Any], *args: Any, waiting: Callable[[], bool]) -> Greenlet:
    """Spawn ``run(*args)`` and return it once ``waiting()`` says its wait is set up."""
    glet = spawn(run, *args)
    for _ in range(SETTLE_ROUNDS):
        sleep(0)
        if waiting():
            break
    assert waiting(), "the greenlet never reached its wait"
    assert not glet.dead, f"the wait ended by itself: {glet.exception!r}"
    return glet


def _kill(glet: Greenlet) -> None:
    glet.kill(timeout=10)
    assert glet.dead, "the kill did not end the wait"


# -- the killed greenlet itself ----------------------------------------------------------


class _Payload:
    """An argument or value whose release shows that nothing pins it."""


def _wait_with(payload: _Payload, event: Event) -> None:
    event.wait()


def test_a_killed_greenlet_releases_its_arguments_and_frames() -> None:
    # The kill's GreenletExit keeps the greenlet's traceback, whose frames hold
    # the arguments; none of it may outlive the last reference to the Greenlet.
    # (Each new worker used to pin its first task through the arguments of its
    # first switch, and a parked worker its last task through its locals.)
    event = Event()
    payload = _Payload()
    ref = weakref.ref(payload)
    glet = _blocked(_wait_with, payload, event, waiting=lambda: len(event._waiters) == 1)
    del payload
    _kill(glet)
    assert isinstance(glet.value, GreenletExit)
    del glet
    _quiesce()
    gc.collect()
    assert ref() is None, "a dead greenlet's frames are still reachable"


def test_an_idle_worker_does_not_keep_its_last_tasks_value() -> None:
    glet = spawn(_Payload)
    value = glet.get(timeout=10)
    ref = weakref.ref(value)
    del glet, value
    _quiesce()
    gc.collect()
    assert ref() is None, "the worker that ran the task still holds its value"


# -- green sockets (the patcher's class, used directly) -------------------------------


@pytest.fixture
def green_pair() -> Iterator[tuple[gsocket.socket, gsocket.socket]]:
    a, b = gsocket.socketpair()
    yield a, b
    a.close()
    b.close()


def _reading(sock: Any) -> Callable[[], bool]:
    return lambda: sock._io_readers is not None and sock._io_readers.waiting > 0


def _writing(sock: Any) -> Callable[[], bool]:
    return lambda: sock._io_writers is not None and sock._io_writers.waiting > 0


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_kill_in_green_recv_leaves_the_socket_readable_by_the_next_greenlet(
    baseline: Baseline, green_pair: tuple[gsocket.socket, gsocket.socket], timeout: float | None
) -> None:
    a, b = green_pair
    a.settimeout(timeout)
    _kill(_blocked(a.recv, 10, waiting=_reading(a)))
    baseline.assert_nothing_left()
    reader = spawn(a.recv, 10)
    b.sendall(b"after")
    assert reader.get(timeout=10) == b"after"
    baseline.assert_nothing_left()


def test_kill_in_green_accept_leaves_the_listener_accepting(baseline: Baseline) -> None:
    listener = gsocket.create_server(("127.0.0.1", 0))
    try:
        _kill(_blocked(listener.accept, waiting=_reading(listener)))
        baseline.assert_nothing_left()
        acceptor = spawn(listener.accept)
        client = gsocket.create_connection(listener.getsockname(), timeout=10)
        conn, _ = acceptor.get(timeout=10)
        conn.close()
        client.close()
    finally:
        listener.close()
    baseline.assert_nothing_left()


def test_kill_in_green_connect_leaves_no_watcher(baseline: Baseline) -> None:
    # A listener with a zero backlog and one connection queued drops the next
    # SYN (Linux), so the green connect stays pending until we kill it.
    listener = stdlib_socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = stdlib_socket.create_connection(listener.getsockname(), timeout=10)
    pending = gsocket.socket()
    try:
        _kill(_blocked(pending.connect, listener.getsockname(), waiting=_writing(pending)))
        baseline.assert_nothing_left()
    finally:
        pending.close()
        filler.close()
        listener.close()
    baseline.assert_nothing_left()


def test_kill_in_select_untracks_the_descriptor(
    baseline: Baseline, green_pair: tuple[gsocket.socket, gsocket.socket]
) -> None:
    a, b = green_pair
    for timeout in (None, 30.0):
        glet = _blocked(
            green_select.select, [a], [], [], timeout, waiting=lambda: a.fileno() in waiting_fds()
        )
        _kill(glet)
        baseline.assert_nothing_left()
    # The descriptor can be selected on again, and wakes its selector.
    selector = spawn(green_select.select, [a], [], [], 30.0)
    b.sendall(b"x")
    assert selector.get(timeout=10)[0] == [a]
    baseline.assert_nothing_left()


# -- the server's CooperativeSocket ------------------------------------------------------


@pytest.mark.parametrize("how", ["recv", "recv_timeout", "recv_into"])
def test_kill_in_cooperative_socket_recv_leaves_it_usable(baseline: Baseline, how: str) -> None:
    raw_a, raw_b = stdlib_socket.socketpair()
    a = CooperativeSocket(raw_a)
    try:
        calls: dict[str, Callable[[], Any]] = {
            "recv": lambda: a.recv(10),
            "recv_timeout": lambda: a.recv_timeout(10, 30.0),
            "recv_into": lambda: a.recv_into(bytearray(10)),
        }
        _kill(
            _blocked(
                calls[how], waiting=lambda: a._io_readers is not None and a._io_readers.waiting > 0
            )
        )
        baseline.assert_nothing_left()
        reader = spawn(a.recv, 10)
        raw_b.sendall(b"after")
        assert reader.get(timeout=10) == b"after"
    finally:
        a.close()
        raw_b.close()
    baseline.assert_nothing_left()


# -- locks -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["Lock", "RLock", "Semaphore"])
@pytest.mark.parametrize("woken_first", [False, True], ids=["waiting", "woken"])
def test_kill_in_acquire_passes_the_lock_to_the_next_waiter(
    baseline: Baseline, kind: str, woken_first: bool
) -> None:
    lock: Any = {"Lock": Lock, "RLock": RLock, "Semaphore": lambda: Semaphore(1)}[kind]()
    inner = lock._mutex if kind == "RLock" else lock  # the queue of waiters
    assert lock.acquire()
    taken: list[str] = []

    def take(name: str) -> None:
        with lock:
            taken.append(name)

    doomed = _blocked(take, "doomed", waiting=lambda: len(inner._queue) == 1)
    survivor = _blocked(take, "survivor", waiting=lambda: len(inner._queue) == 2)
    if woken_first:
        # The kill is queued before the wake-up the release queues: the doomed
        # waiter is promised the lock, then dies, and must pass the promise on.
        doomed.kill(block=False)
        lock.release()
        doomed.join(10)
    else:
        _kill(doomed)
        lock.release()
    survivor.join(10)
    assert taken == ["survivor"]
    assert not inner._queue and inner._notified == 0
    assert lock.acquire(blocking=False), "the lock was left held or promised"
    lock.release()
    baseline.assert_nothing_left()


# -- queues and events ------------------------------------------------------------------


@pytest.mark.parametrize("woken_first", [False, True], ids=["waiting", "woken"])
def test_kill_in_queue_get_leaves_the_item_to_the_next_getter(
    baseline: Baseline, woken_first: bool
) -> None:
    queue: Queue[str] = Queue()
    doomed = _blocked(queue.get, waiting=lambda: queue.getters == 1)
    survivor = _blocked(queue.get, waiting=lambda: queue.getters == 2)
    if woken_first:
        doomed.kill(block=False)
        queue.put("item")
        doomed.join(10)
    else:
        _kill(doomed)
        queue.put("item")
    assert survivor.get(timeout=10) == "item"
    assert queue.getters == 0 and queue.empty()
    baseline.assert_nothing_left()


@pytest.mark.parametrize("woken_first", [False, True], ids=["waiting", "woken"])
def test_kill_in_queue_put_leaves_the_slot_to_the_next_putter(
    baseline: Baseline, woken_first: bool
) -> None:
    queue: Queue[str] = Queue(maxsize=1)
    queue.put("first")
    doomed = _blocked(queue.put, "doomed", waiting=lambda: queue.putters == 1)
    survivor = _blocked(queue.put, "survivor", waiting=lambda: queue.putters == 2)
    if woken_first:
        doomed.kill(block=False)
        assert queue.get() == "first"
        doomed.join(10)
    else:
        _kill(doomed)
        assert queue.get() == "first"
    survivor.join(10)
    assert queue.putters == 0
    assert queue.get(timeout=10) == "survivor" and queue.empty()
    baseline.assert_nothing_left()


@pytest.mark.parametrize("timeout", [None, 30.0])
def test_kill_in_event_wait_leaves_no_waiter(baseline: Baseline, timeout: float | None) -> None:
    event = Event()
    _kill(_blocked(event.wait, timeout, waiting=lambda: len(event._waiters) == 1))
    assert not event._waiters
    baseline.assert_nothing_left()
    waiter = _blocked(event.wait, waiting=lambda: len(event._waiters) == 1)
    event.set()
    assert waiter.get(timeout=10) is True
    baseline.assert_nothing_left()


# -- time -----------------------------------------------------------------------------


def test_kill_in_sleep_cancels_its_timer(baseline: Baseline) -> None:
    hub = baseline.hub
    before = _live_timers(hub)
    _kill(_blocked(sleep, 30, waiting=lambda: _live_timers(hub) == before + 1))
    baseline.assert_nothing_left()


def test_kill_in_a_timeout_bounded_wait_cancels_the_timeout(baseline: Baseline) -> None:
    hub = baseline.hub
    before = _live_timers(hub)
    event = Event()
    timeouts: list[Timeout] = []

    def bounded_wait() -> None:
        with Timeout(30) as timeout:
            timeouts.append(timeout)
            event.wait()

    _kill(_blocked(bounded_wait, waiting=lambda: _live_timers(hub) == before + 1))
    assert not timeouts[0].pending
    assert not event._waiters
    baseline.assert_nothing_left()


# -- subprocesses (the green Popen, used directly) ------------------------------------------


_CHILD_SLEEPS = [sys.executable, "-c", "import time; time.sleep(60)"]


def _assert_reaped(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    assert proc.wait(timeout=30) is not None
    with pytest.raises(ChildProcessError):
        os.waitpid(proc.pid, os.WNOHANG)
    assert not green_os._reaper.watching(proc.pid)


def _waits_for_exit(pid: int) -> bool:
    """Whether a greenlet waits for the exit of child ``pid`` (green os's reaper)."""
    watched = green_os._reaper._watched.get(pid)
    return watched is not None and len(watched.exited._waiters) == 1


def test_kill_in_popen_wait_leaves_the_child_reapable(baseline: Baseline) -> None:
    proc = gsubprocess.Popen(_CHILD_SLEEPS)
    try:
        for timeout in (None, 30.0):
            glet = _blocked(proc.wait, timeout, waiting=lambda: _waits_for_exit(proc.pid))
            _kill(glet)
            assert proc.returncode is None
    finally:
        _assert_reaped(proc)
    baseline.assert_nothing_left()


@pytest.mark.parametrize("pipes", ["stdout", "stdout+stderr"])
def test_kill_in_popen_communicate_leaves_the_child_reapable(
    baseline: Baseline, pipes: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With two pipes the stdlib's _communicate runs, and it looks up
    # subprocess._PopenSelector at call time: patch that one name, as patch_all
    # does (the test below checks the green Popen without it).
    monkeypatch.setattr(subprocess, "_PopenSelector", gsubprocess._PopenSelector)
    stderr = subprocess.PIPE if pipes == "stdout+stderr" else None
    proc = gsubprocess.Popen(_CHILD_SLEEPS, stdout=subprocess.PIPE, stderr=stderr)
    assert proc.stdout is not None
    out_fd = proc.stdout.fileno()
    try:
        _kill(_blocked(proc.communicate, waiting=lambda: out_fd in waiting_fds()))
        assert out_fd not in waiting_fds()
        assert proc.returncode is None
    finally:
        _assert_reaped(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    baseline.assert_nothing_left()


def test_green_popen_communicate_with_two_pipes_cooperates_without_patch_all() -> None:
    # The child exits when we write to its pipe -- which a greenlet can only do
    # while communicate() lets the loop run -- or by itself after 3 s, saying so.
    release_r, release_w = os.pipe()
    child = (
        "import os, select, sys\n"
        f"ready, _, _ = select.select([{release_r}], [], [], 3.0)\n"
        "sys.stdout.write('released' if ready else 'alone')\n"
    )
    proc = gsubprocess.Popen(
        [sys.executable, "-c", child],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(release_r,),
    )
    os.close(release_r)
    writer = spawn(os.write, release_w, b"x")
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        writer.kill()  # before its descriptor is closed and the number reused
        os.close(release_w)
        proc.wait(30)
    assert out == b"released"


# -- the thread pool ----------------------------------------------------------------------


def _count_spawn_tasks() -> int:
    gc.collect()
    return sum(isinstance(obj, _SpawnTask) for obj in gc.get_objects())


def _blocked_apply_then_kill(pool: ThreadPool) -> weakref.ref[_Payload]:
    """Kill a greenlet blocked in ``pool.apply`` while the thread still runs the call."""
    gate = _thread.allocate_lock()  # a real lock: the worker thread must truly block
    gate.acquire()
    started = Event()  # set from the worker thread (Event.set is thread-safe)

    def blocking(payload: _Payload) -> str:
        started.set()
        gate.acquire()
        return "done"

    payload = _Payload()
    ref = weakref.ref(payload)
    glet = spawn(pool.apply, blocking, (payload,))
    del payload
    assert started.wait(10), "the worker thread never ran the call"
    _kill(glet)
    # The thread keeps running the call; let it finish now.
    gate.release()
    assert pool.join(10), "the pool never finished the task"
    return ref


def test_kill_in_threadpool_apply_leaks_neither_the_task_nor_its_waiter(
    baseline: Baseline,
) -> None:
    pool = get_threadpool()
    tasks_before = _count_spawn_tasks()
    ref = _blocked_apply_then_kill(pool)
    _quiesce()  # the delivery of the late result
    assert not pool._unfinished and not pool._queue
    assert _count_spawn_tasks() == tasks_before
    assert ref() is None, "the pool still holds the call's arguments"
    assert pool.apply(lambda: 42) == 42
    baseline.assert_nothing_left()


def test_kill_in_threadpool_apply_does_not_keep_the_loop_alive() -> None:
    # On a hub of its own (a fresh thread), so that the loop's liveness is ours
    # alone to judge: once the call is delivered, the loop must run out of work.
    # A reference the pool took and never gave back would make join() time out.
    outcome: list[Any] = []

    def scenario() -> None:
        hub = get_hub()
        try:
            pool = ThreadPool(hub=hub)
            ref = _blocked_apply_then_kill(pool)
            ran_out = hub.join(timeout=30)
            pool.shutdown(wait=True)
            gc.collect()  # the kill's traceback is a cycle through the greenlet
            outcome.append((ran_out, ref() is None, hub.loop.active_watcher_count))
        except BaseException as exc:  # reported in the test's thread
            outcome.append(exc)
        finally:
            hub.destroy()

    thread = threading.Thread(target=scenario)
    thread.start()
    thread.join(60)
    assert not thread.is_alive()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    assert outcome == [(True, True, 0)]
