"""The Loop and its watchers, driven directly (no hub, no greenlets)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref

import pytest

import greenpatch
from greenpatch.hub.loop import READ, WRITE, CallbackQueue, Loop, WatcherClosedError, resume


@pytest.fixture
def loop():
    loop = Loop()
    yield loop
    loop.destroy()


def test_run_returns_when_nothing_is_active(loop):
    loop.run()  # must not block
    assert loop.active_watcher_count == 0


def test_callbacks_run_in_fifo_order(loop):
    seen = []
    for i in range(5):
        loop.run_callback(seen.append, i)
    loop.run()
    assert seen == [0, 1, 2, 3, 4]


def test_io_watcher_fires_when_readable_and_is_kept_alive_by_the_loop(loop):
    a, b = socket.socketpair()
    try:
        fired = []

        def start_unreferenced_watcher():
            watcher = loop.io(a.fileno(), READ)
            watcher.start(lambda: (fired.append(a.recv(10)), loop.break_()))
            return weakref.ref(watcher)

        ref = start_unreferenced_watcher()  # only the loop holds it now
        b.send(b"ping")
        loop.run()
        assert fired == [b"ping"]
        watcher = ref()
        assert watcher is not None and watcher.active
        watcher.stop()
    finally:
        a.close()
        b.close()


def test_io_watcher_write_readiness(loop):
    a, b = socket.socketpair()
    try:
        watcher = loop.io(a.fileno(), WRITE)
        hits = []
        watcher.start(lambda: (hits.append(1), watcher.stop()))
        loop.run()
        assert hits == [1]
    finally:
        a.close()
        b.close()


def test_stopped_watcher_can_be_restarted(loop):
    watcher = loop.timer(0.001)
    hits = []
    watcher.start(hits.append, "first")
    loop.run()
    assert not watcher.active
    watcher.start(hits.append, "second")
    loop.run()
    assert hits == ["first", "second"]


def test_closed_watcher_raises_a_clear_error(loop):
    watcher = loop.timer(1)
    watcher.close()
    with pytest.raises(WatcherClosedError, match="closed"):
        watcher.start(lambda: None)


def test_destroyed_loop_rejects_new_watchers():
    loop = Loop()
    loop.destroy()
    with pytest.raises(WatcherClosedError, match="destroyed"):
        loop.timer(1)
    with pytest.raises(WatcherClosedError):
        loop.run_once()


def test_repeating_timer_fires_until_stopped(loop):
    watcher = loop.timer(0.001, 0.001)
    hits = []

    def tick():
        hits.append(1)
        if len(hits) == 3:
            watcher.stop()

    watcher.start(tick)
    loop.run()
    assert len(hits) == 3


def test_unreferenced_watcher_does_not_keep_loop_alive(loop):
    watcher = loop.timer(30)
    watcher.ref = False
    watcher.start(lambda: None)
    started = time.monotonic()
    loop.run()
    assert time.monotonic() - started < 5
    watcher.stop()


def test_call_later_orders_by_deadline_and_cancel_works(loop):
    seen = []
    loop.call_later(0.02, seen.append, "late")
    handle = loop.call_later(0.01, seen.append, "cancelled")
    loop.call_later(0.001, seen.append, "early")
    handle.cancel()
    loop.run()
    assert seen == ["early", "late"]
    assert loop.active_watcher_count == 0


def test_many_cancelled_timers_are_compacted(loop):
    handles = [loop.call_later(100, lambda: None) for _ in range(5000)]
    for handle in handles:
        handle.cancel()
    assert loop.active_watcher_count == 0
    assert len(loop._timers) < 5000


def test_callback_that_raises_does_not_stop_the_loop(loop):
    errors = []
    loop.error_handler = lambda context, t, v, tb: errors.append(v)
    seen = []
    loop.run_callback(lambda: 1 / 0)
    loop.run_callback(seen.append, "after")
    loop.run()
    assert seen == ["after"]
    assert isinstance(errors[0], ZeroDivisionError)


def test_run_callback_threadsafe_wakes_a_blocked_loop(loop):
    keepalive = loop.timer(30)
    keepalive.start(lambda: None)
    seen = []

    def from_thread():
        loop.run_callback_threadsafe(lambda: (seen.append(threading.get_ident()), keepalive.stop()))

    thread = threading.Thread(target=from_thread)
    started = time.monotonic()
    thread.start()
    loop.run()
    thread.join()
    assert seen == [threading.get_ident()]
    assert time.monotonic() - started < 10


def test_async_watcher_send_from_another_thread(loop):
    watcher = loop.async_()
    seen = []
    watcher.start(lambda: (seen.append("woken"), watcher.stop()))
    thread = threading.Thread(target=watcher.send)
    thread.start()
    loop.run()
    thread.join()
    assert seen == ["woken"]


def test_prepare_check_and_idle_watchers_run_around_polling(loop):
    order = []
    prepare, check, idle = loop.prepare(), loop.check(), loop.idle()

    def on_idle():
        order.append("idle")
        idle.stop()
        prepare.stop()
        check.stop()

    prepare.start(order.append, "prepare")
    check.start(order.append, "check")
    idle.start(on_idle)
    loop.run()
    assert order[0] == "prepare"
    assert "check" in order and "idle" in order
    assert order.index("prepare") < order.index("check")


def test_break_stops_run(loop):
    watcher = loop.timer(0.001, 0.001)
    hits = []

    def tick():
        hits.append(1)
        loop.break_()

    watcher.start(tick)
    loop.run()
    assert hits == [1]
    watcher.stop()


def _wait_until(predicate, timeout=10.0):
    """Let the hub run (it drives the default loop) until predicate() or timeout."""
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        greenpatch.sleep(0.005)
    return predicate()


def test_signal_watcher_on_the_default_loop():
    loop = greenpatch.get_hub().loop
    watcher = loop.signal(signal.SIGUSR1)
    seen = []
    watcher.start(lambda: (seen.append("usr1"), watcher.stop()))
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert _wait_until(lambda: seen)
        assert seen == ["usr1"]
    finally:
        watcher.close()
        signal.signal(signal.SIGUSR1, previous)


def test_child_watcher_reports_exit_status():
    loop = greenpatch.get_hub().loop
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(7)
    watcher = loop.child(pid)
    seen = []
    watcher.start(lambda: (seen.append((watcher.rpid, watcher.rstatus)), watcher.stop()))
    try:
        assert _wait_until(lambda: seen)
        assert seen[0][0] == pid
        assert os.waitstatus_to_exitcode(seen[0][1]) == 7
    finally:
        watcher.close()


def test_only_one_loop_may_wrap_the_default_loop():
    greenpatch.get_hub()  # the main thread's hub owns it
    with pytest.raises(RuntimeError, match="already wrapped"):
        Loop(default=True)


def test_child_watcher_needs_the_default_loop(loop):
    with pytest.raises(ValueError, match="default loop"):
        loop.child(os.getpid())


def test_default_loop_does_not_reap_unwatched_children():
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(3)
    # Let SIGCHLD arrive while the hub polls the default loop: with libev's
    # handler left in place the child would be reaped behind our back (ECHILD).
    for _ in range(20):
        greenpatch.sleep(0.005)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3


def test_loops_in_two_threads_run_at_once():
    results = {}
    barrier = threading.Barrier(2, timeout=10)

    def worker(name):
        loop = Loop()
        try:
            barrier.wait()
            seen = []
            loop.call_later(0.05, seen.append, name)
            loop.run()
            results[name] = seen
        finally:
            loop.destroy()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {"a": ["a"], "b": ["b"]}


def test_reinit_in_a_forked_child_keeps_io_working(loop):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            loop.reinit()
            a, b = socket.socketpair()
            watcher = loop.io(a.fileno(), READ)
            seen = []
            watcher.start(lambda: (seen.append(a.recv(4)), watcher.stop()))
            b.send(b"kid!")
            loop.run()
            code = 0 if seen == [b"kid!"] else 2
        finally:
            os.write(write_end, bytes([code]))
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    assert os.read(read_end, 1) == b"\x00"
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0


def test_repr_names_state(loop):
    watcher = loop.io(0, READ)
    assert "fd=0" in repr(watcher) and "stopped" in repr(watcher)
    watcher.close()
    assert "closed" in repr(watcher)
    assert "own" in repr(loop)


def test_cancelling_many_timers_inside_a_timer_callback_keeps_the_timer_count_true():
    # A timer callback cancels enough timers to rebuild the heap while another
    # due timer still waits in the same pass.  The loop once popped on from the
    # old heap list: its count drifted and it believed in phantom timers (never
    # idle, so never LoopExit, and a busy loop instead of a block).
    loop = Loop()
    try:
        handles = [loop.call_later(100, int, n) for n in range(300)]
        ran = []

        def cancel_all() -> None:
            for handle in handles:
                handle.cancel()

        loop.call_later(0, cancel_all)
        loop.call_later(0, ran.append, "second")
        loop.run_once(block=False)
        assert ran == ["second"]
        assert loop.live_timers == len(list(loop.pending_timers())) == 0
        assert loop.active_watcher_count == 0
        assert not loop.run_once(block=False), "the loop believes in phantom timers"
    finally:
        loop.destroy()


def test_a_base_exception_in_one_callback_lets_the_rest_of_the_batch_run(loop):
    # Two timers due in the same iteration: libev reports each once, so the one
    # after a KeyboardInterrupt must still run before the interrupt propagates.
    ran = []

    def fire(name):
        ran.append(name)
        if len(ran) == 1:
            raise KeyboardInterrupt

    first, second = loop.timer(0), loop.timer(0)
    first.start(fire, "first")
    second.start(fire, "second")
    with pytest.raises(KeyboardInterrupt):
        loop.run_once()
    assert sorted(ran) == ["first", "second"]
    assert not first.active and not second.active
    assert loop.active_watcher_count == 0


def test_an_io_watcher_on_a_closed_descriptor_fires_once_with_error_and_is_stopped(loop):
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        watcher = loop.io(read_end, READ)
        fired = []
        watcher.start(lambda: fired.append(watcher.error))
        loop.run()  # returns: the failed watcher no longer keeps the loop alive
        assert fired == [True]
        assert not watcher.active
        assert loop.io_watchers(read_end) == []
        assert loop.watched_fds() == []
    finally:
        os.close(write_end)


def test_a_descriptor_closed_under_a_watcher_fails_it_when_its_interest_changes(loop):
    read_end, write_end = os.pipe()
    reading = loop.io(read_end, READ)
    writing = loop.io(read_end, WRITE)
    errors = []
    reading.start(lambda: errors.append(("read", reading.error)))
    loop.run_once(block=False)  # libev registers the descriptor
    os.close(read_end)  # behind libev's back
    try:
        writing.start(lambda: errors.append(("write", writing.error)))
        loop.run_once(block=False)
        assert sorted(errors) == [("read", True), ("write", True)]
        assert not reading.active and not writing.active
    finally:
        os.close(write_end)


def test_factories_say_whether_a_watcher_is_process_wide(loop):
    kept = loop.timer(3600, process_wide=True)
    dropped = loop.timer(3600)
    assert kept.process_wide and not dropped.process_wide
    kept.start(lambda: None)
    dropped.start(lambda: None)
    loop.abandon_waits()
    assert kept.active
    assert not dropped.active
    kept.stop()


def test_waking_a_loop_from_threads_while_it_is_destroyed_never_touches_freed_memory():
    # Thousands of races between run_callback_threadsafe in other threads and
    # destroy() here; run in a fresh interpreter, so a use-after-free shows as a
    # crash of that process, not of pytest.
    script = """
import threading
from greenpatch.hub.loop import Loop
current = [Loop()]
stop = threading.Event()
def waker():
    while not stop.is_set():
        current[0].run_callback_threadsafe(int)
threads = [threading.Thread(target=waker) for _ in range(2)]
for thread in threads:
    thread.start()
for _ in range(3000):
    old, current[0] = current[0], Loop()
    old.destroy()
stop.set()
for thread in threads:
    thread.join()
current[0].destroy()
print("survived")
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "survived"


def test_before_poll_calls_run_once_right_before_the_next_poll(loop):
    seen = []
    loop.run_callback(lambda: loop.before_poll(lambda: seen.append("before poll")))
    loop.run_once(block=False)  # runs the callback, which asks for the call
    assert seen == []
    loop.run_once(block=False)
    assert seen == ["before poll"]
    loop.run_once(block=False)
    assert seen == ["before poll"]  # once


def test_the_callback_queue_reads_its_head_for_the_hub():
    queue = CallbackQueue()
    assert queue.head_resume() is None
    token = [object()]
    queue.append((resume, token))
    assert queue.head_resume() is token
    assert len(queue) == 1  # peeking leaves it queued
    queue.popleft()
    queue.append((print, ("not", "a resume")))
    queue.append((resume, token))
    assert queue.head_resume() is None


def test_a_lane_feeds_its_entries_in_fifo_order_with_the_other_callbacks():
    loop = Loop()
    try:
        calls = []
        lane = loop.lane()
        entry = (lambda lane: calls.append(("lane", lane.popleft())), (lane,))
        for item in ("a", "b"):
            lane.append(item)
            loop.run_callback(calls.append, ("plain", item))
            loop._callbacks.append(entry)
        loop.run_once(block=False)
        assert calls == [("plain", "a"), ("lane", "a"), ("plain", "b"), ("lane", "b")]
        assert not lane
    finally:
        loop.destroy()


def test_dropping_the_callbacks_drops_the_lanes_too():
    loop = Loop()
    try:
        lane = loop.lane()
        lane.append("stale")
        loop._callbacks.append((lambda lane: lane.popleft(), (lane,)))
        loop.abandon_waits()
        assert not lane and loop.pending_callbacks == 0
        lane.append("fresh")  # in step again: the next entry finds its own
        seen = []
        loop._callbacks.append((lambda lane: seen.append(lane.popleft()), (lane,)))
        loop.run_once(block=False)
        assert seen == ["fresh"]
    finally:
        loop.destroy()


# Python-level signal handlers wake the default loop (issue 18, pattern 4).
# In a fresh interpreter: the handlers and the default loop are process-wide.
_SIGNAL_WAKE_SCRIPT = """
import signal, sys, threading
from greenpatch.hub.loop import Loop, signal_wakes_default_loop, wake_default_loop_for_signal

loop = Loop(default=True)
seen = []
# Installed here, whatever the caller's dispositions were.
signal.signal(signal.SIGUSR2, lambda signum, frame: seen.append(signum))
assert signal_wakes_default_loop(signal.SIGUSR2)
assert signal_wakes_default_loop(signal.SIGUSR2)   # idempotent
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
assert not signal_wakes_default_loop(signal.SIGUSR1)   # nothing to chain

def take_it_in_a_thread():
    # Taken by this thread: the main thread's epoll_wait is not interrupted.
    signal.pthread_kill(threading.get_ident(), signal.SIGUSR2)

for wake in (take_it_in_a_thread, wake_default_loop_for_signal):
    # A timer far away: run_once blocks until it, unless something wakes it.
    late = loop.call_later(30, seen.append, "timer")
    thread = threading.Thread(target=wake)
    thread.start()
    loop.run_once()
    assert late.pending, "the loop slept until its timer"
    late.cancel()
    thread.join()
    loop.run_once(block=False)
assert seen == [signal.SIGUSR2], seen
print("ok")
"""


def test_a_python_signal_handler_wakes_a_blocked_default_loop():
    out = subprocess.run(
        [sys.executable, "-c", _SIGNAL_WAKE_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out
