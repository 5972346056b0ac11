"""The hub: sleeping, waiting on descriptors, errors, LoopExit, threads, fork."""

from __future__ import annotations

import contextvars
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

import greenpatch
from greenpatch import LoopExit, get_hub, sleep, spawn
from greenpatch.hub import BlockingSwitchOutError, Waiter
from greenpatch.hub.io import waiting_fds


def test_get_hub_is_one_per_thread_and_lazy():
    main_hub = get_hub()
    assert get_hub() is main_hub
    assert main_hub.loop.default
    other = {}

    def in_thread():
        other["hub"] = get_hub()
        other["default"] = other["hub"].loop.default
        other["hub"].destroy()

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(30)
    assert other["hub"] is not main_hub
    assert other["default"] is False


def test_sleep_zero_lets_every_ready_greenlet_run():
    order = []

    def worker(name):
        for step in range(3):
            order.append((name, step))
            sleep(0)

    greenpatch.joinall([spawn(worker, "a"), spawn(worker, "b")])
    assert order == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2)]


def test_many_greenlets_interleave_in_fifo_order():
    order = []

    def worker(i):
        order.append(("start", i))
        sleep(0)
        order.append(("end", i))

    greenpatch.joinall([spawn(worker, i) for i in range(100)])
    assert order[:100] == [("start", i) for i in range(100)]
    assert order[100:] == [("end", i) for i in range(100)]


def test_sleepers_wake_in_deadline_order():
    woke = []
    greenlets = [spawn(lambda d: (sleep(d), woke.append(d)), d) for d in (0.03, 0.01, 0.02)]
    greenpatch.joinall(greenlets)
    assert woke == [0.01, 0.02, 0.03]


def test_thousand_sleepers_overlap():
    done = greenpatch.Event() if hasattr(greenpatch, "Event") else None
    finished = []
    greenlets = [spawn(lambda: (sleep(0.05), finished.append(1))) for _ in range(1000)]
    greenpatch.joinall(greenlets)
    assert len(finished) == 1000
    del done


def test_wait_read_wakes_when_data_arrives():
    a, b = socket.socketpair()
    try:
        got = []

        def reader():
            greenpatch.wait_read(a.fileno())
            got.append(a.recv(16))

        glet = spawn(reader)
        sleep(0)
        assert not glet.dead
        b.send(b"hello")
        glet.join(timeout=10)
        assert got == [b"hello"]
    finally:
        a.close()
        b.close()


def test_wait_write_returns_for_a_writable_socket():
    a, b = socket.socketpair()
    try:
        greenpatch.wait_write(a.fileno(), timeout=10)
    finally:
        a.close()
        b.close()


def test_wait_read_timeout_raises_and_removes_its_watcher():
    a, b = socket.socketpair()
    hub = get_hub()
    try:
        before = hub.loop.active_watcher_count
        with pytest.raises(TimeoutError):
            greenpatch.wait_read(a.fileno(), timeout=0.01)
        assert hub.loop.active_watcher_count == before
        assert a.fileno() not in waiting_fds()
    finally:
        a.close()
        b.close()


def test_wait_read_timeout_uses_the_given_exception():
    a, b = socket.socketpair()
    try:
        with pytest.raises(socket.timeout):
            greenpatch.wait_read(a.fileno(), timeout=0.01, timeout_exc=socket.timeout("slow"))
    finally:
        a.close()
        b.close()


def test_closing_an_fd_wakes_its_waiters_with_an_error():
    a, b = socket.socketpair()
    errors = []

    def reader():
        try:
            greenpatch.wait_read(a.fileno())
        except OSError as exc:
            errors.append(exc)

    readers = [spawn(reader) for _ in range(3)]
    sleep(0)
    assert greenpatch.cancel_fd_waits(a.fileno()) == 3
    a.close()
    greenpatch.joinall(readers, timeout=10)
    b.close()
    assert len(errors) == 3
    assert all("closed" in str(e) for e in errors)


def test_cancel_wait_raises_the_error_in_the_waiter():
    hub = get_hub()
    a, b = socket.socketpair()
    watcher = hub.loop.io(a.fileno(), 1)
    caught = []

    def waiter():
        try:
            hub.wait(watcher)
        except ValueError as exc:
            caught.append(exc)

    glet = spawn(waiter)
    sleep(0)
    hub.cancel_wait(watcher, ValueError("cancelled"))
    glet.join(10)
    watcher.close()
    a.close()
    b.close()
    assert [str(e) for e in caught] == ["cancelled"]


def test_blocking_inside_a_hub_callback_is_refused():
    hub = get_hub()
    errors = []
    original = hub.handle_error
    hub.loop.error_handler = lambda ctx, t, v, tb: errors.append(v)
    try:
        hub.loop.run_callback(sleep, 0.01)
        sleep(0.02)
    finally:
        hub.loop.error_handler = original
    assert errors and isinstance(errors[0], BlockingSwitchOutError)


def test_callback_exception_is_reported_and_the_loop_continues(capsys):
    hub = get_hub()
    seen = []
    hub.loop.run_callback(lambda: 1 / 0)
    hub.loop.run_callback(seen.append, "after")
    sleep(0.01)
    assert seen == ["after"]
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_greenlet_exception_is_printed_with_its_name(capsys):
    def boom():
        raise KeyError("lost")

    glet = spawn(boom)
    glet.name = "the-boomer"
    glet.join()
    err = capsys.readouterr().err
    assert "the-boomer failed with KeyError" in err
    assert "lost" in err
    # The loop keeps working afterwards.
    assert spawn(lambda: 42).get(timeout=10) == 42


def test_keyboard_interrupt_in_a_greenlet_reaches_the_main_greenlet():
    def interrupt():
        raise KeyboardInterrupt

    spawn(interrupt)
    with pytest.raises(KeyboardInterrupt):
        sleep(5)


def test_system_exit_in_a_callback_reaches_the_main_greenlet():
    def leave():
        raise SystemExit(3)

    get_hub().loop.run_callback(leave)
    with pytest.raises(SystemExit) as info:
        sleep(5)
    assert info.value.code == 3


def test_waiting_on_nothing_raises_loop_exit_in_the_main_greenlet():
    waiter = Waiter()
    with pytest.raises(LoopExit, match="block forever"):
        waiter.get()
    # The hub still works afterwards.
    assert spawn(lambda: "ok").get(timeout=10) == "ok"


def test_hub_join_runs_until_nothing_is_left():
    done = []
    spawn(lambda: (sleep(0.01), done.append(1)))
    assert get_hub().join(timeout=10) is True
    assert done == [1]


def test_waiter_remembers_a_switch_made_before_get():
    waiter = Waiter()
    waiter.switch("early")
    assert waiter.get() == "early"


def test_each_greenlet_starts_with_a_fresh_context():
    var = contextvars.ContextVar("var", default="unset")

    def setter():
        var.set("leaked?")
        return var.get()

    def reader():
        return var.get()

    assert spawn(setter).get() == "leaked?"
    # The second task may run on the same reused worker: it must not see the value.
    assert spawn(reader).get() == "unset"
    # Queued back to back, the second runs in place on the worker of the first.
    first, second = spawn(setter), spawn(reader)
    assert (first.get(), second.get()) == ("leaked?", "unset")


def test_hubs_in_two_os_threads_run_at_once():
    results = {}
    barrier = threading.Barrier(2, timeout=10)

    def thread_main(name):
        barrier.wait()
        glets = [spawn(lambda i: (sleep(0.02), i)[1], i) for i in range(50)]
        greenpatch.joinall(glets)
        results[name] = sorted(g.value for g in glets)
        get_hub().destroy()

    threads = [threading.Thread(target=thread_main, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {"a": list(range(50)), "b": list(range(50))}


def test_forked_child_hub_keeps_working():
    # Use the main hub before forking so the child inherits a live loop.
    a, b = socket.socketpair()
    spawn(lambda: None).join()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:

            def reader():
                greenpatch.wait_read(a.fileno(), timeout=10)
                return a.recv(5)

            glet = spawn(reader)
            b.send(b"child")
            code = 0 if glet.get(timeout=10) == b"child" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    a.close()
    b.close()
    assert os.waitstatus_to_exitcode(status) == 0


def test_importing_greenpatch_creates_no_hub():
    code = textwrap.dedent(
        """
        import greenpatch
        from greenpatch.hub.hub import get_hub_if_exists
        assert get_hub_if_exists() is None
        print("clean")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "clean", out.stderr


def test_ctrl_c_while_the_hub_blocks_reaches_the_main_greenlet():
    code = textwrap.dedent(
        """
        import signal
        # What Python does at start-up when SIGINT is not ignored.  The child
        # inherits the caller's disposition: under `nohup`, `cmd &` in a script
        # or some CI runners SIGINT is ignored, and Ctrl-C would never arrive.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import os, threading, greenpatch
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            greenpatch.sleep(30)
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "interrupted", out.stderr


def test_destroying_a_hub_runs_every_destroy_hook_and_kills_its_default_pool(capsys):
    # In a thread of its own: destroying the main thread's hub would disturb the run.
    seen = {}

    def thread_main():
        hub = get_hub()
        pool = greenpatch.get_threadpool()
        assert pool.apply(sum, ([1, 2],)) == 3

        def broken(dead_hub):
            raise RuntimeError("a broken hook")

        hub.destroy_hooks.insert(0, broken)
        hub.destroy_hooks.append(lambda dead_hub: seen.setdefault("hook", dead_hub is hub))
        hub.destroy()
        seen["pool closed"] = pool.closed
        seen["state"] = dict(hub.module_state)

    thread = threading.Thread(target=thread_main)
    thread.start()
    thread.join(30)
    assert seen["hook"] is True  # ran although an earlier hook failed
    assert seen["pool closed"] is True
    assert "greenpatch.hub.threadpool" not in seen["state"]
    assert "a broken hook" in capsys.readouterr().err


# -- gevent's sleep(ref=False), idle() and reinit() (issue 16) -------------------------


def test_an_unrefd_sleep_does_not_keep_the_loop_alive():
    import greenpatch

    sleeper = greenpatch.spawn(greenpatch.sleep, 5, ref=False)
    assert greenpatch.wait(timeout=10) is True
    assert not sleeper.dead
    sleeper.kill()


def test_idle_returns_after_everything_ready_has_run():
    import greenpatch

    order = []

    def chain(n):
        order.append(n)
        if n < 3:
            greenpatch.spawn(chain, n + 1)

    greenpatch.spawn(chain, 0)
    greenpatch.idle()
    assert order == [0, 1, 2, 3]


def test_reinit_is_harmless_outside_a_fork():
    import greenpatch

    greenpatch.reinit()
    assert greenpatch.spawn(lambda: 1).get() == 1
