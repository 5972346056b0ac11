"""Green ``threading`` under ``patch_all()``, each group of checks in a fresh interpreter.

The pytest process itself is never patched.  Scripts start with ``PATCH``; each
prints what the test asserts on, and must not print a traceback.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PATCH = "import greenpatch\ngreenpatch.patch_all(warn_late=False)\n"


def run(code: str, *args: str, patch: bool = True) -> subprocess.CompletedProcess[str]:
    source = (PATCH if patch else "") + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", source, *args], capture_output=True, text=True, timeout=60
    )


def check(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    return out.stdout


def test_thread_api():
    out = run(
        """
        import _thread, os, sys, threading, time
        import greenpatch

        results = {}
        def target(key, value):
            time.sleep(0.01)
            me = threading.current_thread()
            results[key] = (value, me.name, threading.get_ident(), me.ident, me.native_id)

        class Worker(threading.Thread):
            def run(self):
                time.sleep(0.02)
                results["subclass"] = threading.current_thread() is self

        a = threading.Thread(target=target, args=("a", 1), name="alpha")
        b = Worker(daemon=True)
        for t in (a, b):
            t.start()
        assert a.is_alive() and b.is_alive() and b.daemon and not a.daemon
        assert {a, b} <= set(threading.enumerate())
        assert threading.active_count() == 3
        assert a.ident != b.ident and threading.get_ident() not in (a.ident, b.ident)
        a.join(); b.join()
        assert not a.is_alive() and not b.is_alive()
        assert threading.enumerate() == [threading.main_thread()]
        value, name, ident, me_ident, native = results["a"]
        assert (value, name, ident, me_ident) == (1, "alpha", a.ident, a.ident)
        assert native == threading.get_native_id() == a.native_id  # the OS id is kept
        assert results["subclass"]

        # The main thread is still the main thread, named by the OS ident.
        assert threading.current_thread() is threading.main_thread()
        assert threading.main_thread().ident == greenpatch.original("_thread", "get_ident")()

        # join(timeout) returns with the thread still alive; errors as the stdlib.
        slow = threading.Thread(target=time.sleep, args=(0.3,))
        started = time.monotonic()
        slow.start()
        slow.join(0.05)
        assert slow.is_alive() and 0.04 < time.monotonic() - started < 0.25
        slow.join(-1)  # negative: like 0
        assert slow.is_alive()
        for bad in (threading.Thread(target=print).join, threading.current_thread().join):
            try:
                bad()
            except RuntimeError:
                pass
            else:
                raise AssertionError(bad)
        slow.join()
        assert not slow.is_alive()

        # An exception ends the thread through threading.excepthook.
        hooked = []
        threading.excepthook = lambda args: hooked.append(args.exc_type)
        t = threading.Thread(target=lambda: 1 / 0)
        t.start(); t.join()
        assert hooked == [ZeroDivisionError]

        # _thread names, and the originals the registry kept.
        assert isinstance(threading.Lock(), _thread.LockType)
        assert isinstance(_thread.allocate_lock(), _thread.LockType)
        assert type(threading.RLock()) is _thread.RLock
        assert greenpatch.original("threading", "get_ident") is not threading.get_ident
        assert greenpatch.is_patched("_thread") and greenpatch.is_patched("threading")
        done = threading.Event()
        ident = _thread.start_new_thread(lambda: done.set(), ())
        assert done.wait(5) and isinstance(ident, int)

        # RLock: owned by the thread (task), re-entrant, others wait.
        rlock = threading.RLock()
        log = []
        def holder():
            with rlock:
                with rlock:
                    log.append("holder in")
                    time.sleep(0.05)
            log.append("holder out")
        def other():
            time.sleep(0.01)
            assert not rlock.acquire(blocking=False)
            with rlock:
                log.append("other in")
        ts = [threading.Thread(target=holder), threading.Thread(target=other)]
        for t in ts: t.start()
        for t in ts: t.join()
        assert log == ["holder in", "holder out", "other in"], log

        # threading.local: one value per green thread, none leaks to the next.
        local = threading.local()
        local.x = "main"
        seen = []
        def use_local(i):
            seen.append(getattr(local, "x", None))
            local.x = i
            time.sleep(0.01)
            assert local.x == i
        ts = [threading.Thread(target=use_local, args=(i,)) for i in range(20)]
        for t in ts: t.start()
        for t in ts: t.join()
        assert seen == [None] * 20 and local.x == "main"
        print("ok")
        """
    )
    assert check(out).strip() == "ok"


def test_synchronization_primitives_are_green():
    out = run(
        """
        import threading, time
        import greenpatch

        ticks = []
        def ticker():
            while True:
                ticks.append(time.monotonic())
                time.sleep(0.005)
        greenpatch.spawn(ticker)

        # Join a thread blocked on a green lock that another thread releases.
        lock = threading.Lock()
        lock.acquire()
        blocked = threading.Thread(target=lambda: (lock.acquire(), lock.release()))
        releaser = threading.Thread(target=lambda: (time.sleep(0.05), lock.release()))
        blocked.start(); releaser.start()
        blocked.join(5)
        assert not blocked.is_alive()

        event = threading.Event()
        waiters = [threading.Thread(target=event.wait) for _ in range(5)]
        for t in waiters: t.start()
        time.sleep(0.02)
        assert all(t.is_alive() for t in waiters)
        event.set()
        for t in waiters: t.join(5)
        assert not any(t.is_alive() for t in waiters)
        assert not threading.Event().wait(0.01)

        cond = threading.Condition()
        items = []
        def consume():
            with cond:
                assert cond.wait_for(lambda: items, timeout=5)
                items.pop()
        consumers = [threading.Thread(target=consume) for _ in range(3)]
        for t in consumers: t.start()
        for i in range(3):
            time.sleep(0.01)
            with cond:
                items.append(i)
                cond.notify()
        for t in consumers: t.join(5)
        assert items == [] and not any(t.is_alive() for t in consumers)

        sem = threading.BoundedSemaphore(2)
        inside = []
        peak = []
        def limited():
            with sem:
                inside.append(1); peak.append(len(inside))
                time.sleep(0.02)
                inside.pop()
        ts = [threading.Thread(target=limited) for _ in range(6)]
        for t in ts: t.start()
        for t in ts: t.join(5)
        assert max(peak) == 2
        try:
            sem.release()
        except ValueError:
            pass
        else:
            raise AssertionError("BoundedSemaphore over-release")

        barrier = threading.Barrier(4, timeout=5)
        order = []
        def meet(i):
            order.append(("before", i))
            barrier.wait()
            order.append(("after", i))
        ts = [threading.Thread(target=meet, args=(i,)) for i in range(4)]
        for t in ts: t.start()
        for t in ts: t.join(5)
        assert [kind for kind, _ in order] == ["before"] * 4 + ["after"] * 4

        fired = []
        timer = threading.Timer(0.05, fired.append, args=("fired",))
        cancelled = threading.Timer(0.05, fired.append, args=("cancelled",))
        timer.start(); cancelled.start(); cancelled.cancel()
        timer.join(5); cancelled.join(5)
        assert fired == ["fired"]

        gaps = [b - a for a, b in zip(ticks, ticks[1:])]
        assert len(ticks) > 20 and max(gaps) < 0.2, (len(ticks), max(gaps))
        print("ok")
        """
    )
    assert check(out).strip() == "ok"


COOPERATION_SCRIPT = """
import socket, threading, time

def serve(server):
    def handle(conn):
        with conn:
            data = conn.recv(100)
            time.sleep(0.2)              # a slow server: the clients' waits overlap
            conn.sendall(data.upper())
    for _ in range(50):
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,)).start()

ticks = []
def ticker():
    while not done.is_set():
        ticks.append(time.monotonic())
        time.sleep(0.01)

done = threading.Event()
server = socket.create_server(("127.0.0.1", 0))
threading.Thread(target=serve, args=(server,), daemon=True).start()
threading.Thread(target=ticker, daemon=True).start()

replies = []
def client(i):
    with socket.create_connection(server.getsockname(), timeout=10) as sock:
        sock.sendall(b"hello %d" % i)
        replies.append(sock.recv(100))

started = time.monotonic()
clients = [threading.Thread(target=client, args=(i,)) for i in range(50)]
for t in clients: t.start()
for t in clients: t.join()
elapsed = time.monotonic() - started
done.set()
assert sorted(replies) == sorted(b"HELLO %d" % i for i in range(50)), replies
gaps = [b - a for a, b in zip(ticks, ticks[1:])]
# Sequentially: 50 x 0.2 s = 10 s.  The ticker never waited long for the loop.
assert elapsed < 3.0, elapsed
assert len(ticks) > 10 and max(gaps) < 0.5, (len(ticks), max(gaps))

# 1,000 sleeping threads take about one sleep.
started = time.monotonic()
sleepers = [threading.Thread(target=time.sleep, args=(0.2,)) for _ in range(1000)]
for t in sleepers: t.start()
for t in sleepers: t.join()
elapsed = time.monotonic() - started
assert elapsed < 2.0, elapsed   # sequentially 200 s; less than 10 sleeps
print("ok")
"""


def test_threads_cooperate_under_greenpatch_run(tmp_path: Path):
    script = tmp_path / "cooperate.py"
    script.write_text(COOPERATION_SCRIPT)
    out = subprocess.run(
        [sys.executable, "-m", "greenpatch", "run", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check(out).strip() == "ok"


def test_logging_and_executor_from_many_threads():
    out = run(
        """
        import logging, threading, time
        from concurrent.futures import ThreadPoolExecutor, as_completed

        class SlowHandler(logging.Handler):
            '''Switches greenlets in the middle of emit, holding the handler lock.'''
            def __init__(self):
                super().__init__()
                self.records = []
            def emit(self, record):
                self.records.append(("start", record.threadName))
                time.sleep(0.001)
                self.records.append(("end", record.threadName))

        handler = SlowHandler()
        log = logging.getLogger("many")
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        def chatty(i):
            for j in range(5):
                log.info("thread %d line %d", i, j)
        ts = [threading.Thread(target=chatty, args=(i,)) for i in range(50)]
        for t in ts: t.start()
        for t in ts: t.join(10)
        assert not any(t.is_alive() for t in ts)
        records = handler.records
        assert len(records) == 500
        # The green handler lock kept each emit whole.
        pairs = zip(records[::2], records[1::2])
        assert all(a[0] == "start" and b == ("end", a[1]) for a, b in pairs)

        def job(x):
            time.sleep(0.01)
            log.info("job %d", x)
            return x * x
        with ThreadPoolExecutor(max_workers=10) as pool:
            futures = [pool.submit(job, x) for x in range(40)]
            assert sorted(f.result(timeout=10) for f in as_completed(futures)) == [
                x * x for x in range(40)
            ]
            # Submitting from many green threads at once (each holds the
            # executor's locks across Thread.start, which switches).
            subs = [threading.Thread(target=lambda: pool.submit(job, 1).result(10))
                    for _ in range(20)]
            for t in subs: t.start()
            for t in subs: t.join(10)
        print("ok")
        """
    )
    assert check(out).strip() == "ok"


def test_green_locks_still_work_while_the_interpreter_finalizes():
    # Handlers collected late at exit take logging's (green) lock from weakref
    # callbacks, after greenlet has stopped naming the running greenlet.
    out = run(
        """
        import logging, threading
        logging.getLogger("x").addHandler(logging.StreamHandler())
        t = threading.Thread(target=lambda: logging.getLogger("x").warning("logged"))
        t.start(); t.join()
        class Holder:
            pass
        holder = Holder()
        holder.cycle = holder   # freed only by the collector, late in shutdown
        holder.handlers = [logging.StreamHandler() for _ in range(3)]
        del holder
        """
    )
    check(out)
    assert out.stderr.strip() == "logged"


@pytest.mark.parametrize("asyncio_imported", ["before", "after"])
def test_asyncio_run_in_green_threads(asyncio_imported: str):
    prologue = "import asyncio\n" if asyncio_imported == "before" else ""
    code = (
        prologue
        + PATCH
        + textwrap.dedent(
            """
        import asyncio, threading, time, greenlet

        async def work(n):
            loop = asyncio.get_running_loop()
            for _ in range(3):
                await asyncio.sleep(0.02)
                assert asyncio.get_running_loop() is loop
                assert asyncio.current_task() is not None
                future = asyncio.Future()       # the C Future finds the running loop
                future.set_result(n)
                assert future.get_loop() is loop and await future == n
            time.sleep(0.01)   # blocking (patched) code inside a coroutine switches
            assert asyncio.get_running_loop() is loop
            await loop.run_in_executor(None, time.sleep, 0.01)   # a green executor thread
            return n

        results = []
        def in_thread(n):
            results.append(asyncio.run(work(n)))

        # One loop in a green thread while the main greenlet keeps running.
        ticks = 0
        t = threading.Thread(target=in_thread, args=(0,))
        t.start()
        while t.is_alive():
            time.sleep(0.005)
            ticks += 1
        t.join()
        assert results == [0] and ticks > 5, (results, ticks)

        # Loops in three green threads and in the main greenlet, all at once.
        threads = [threading.Thread(target=in_thread, args=(n,)) for n in (1, 2, 3)]
        for t in threads: t.start()
        async def main():
            await asyncio.sleep(0.01)
            time.sleep(0.05)        # the green threads' loops run meanwhile
            await asyncio.sleep(0.05)
            return "main"
        assert asyncio.run(main()) == "main"
        for t in threads: t.join()
        assert sorted(results) == [0, 1, 2, 3], results
        assert greenlet.gettrace() is None   # the switch tracer left with the last loop
        print("ok")
        """
        )
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert check(out).strip() == "ok"


def test_exit_waits_for_non_daemon_threads_and_wakes_main_thread_joiners():
    out = run(
        """
        import threading, time
        def late():
            time.sleep(0.1)
            print("non-daemon thread finished")
        def main_joiner():
            threading.main_thread().join()
            print("main thread joined")
        threading.Thread(target=late).start()
        threading.Thread(target=main_joiner).start()
        threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()
        print("main module done")
        """
    )
    assert check(out).splitlines() == [
        "main module done",
        "main thread joined",
        "non-daemon thread finished",
    ]


def test_exit_with_a_thread_that_can_never_finish_reports_instead_of_hanging():
    out = run(
        """
        import threading
        threading.Thread(target=threading.Event().wait, name="stuck").start()
        print("main module done")
        """
    )
    assert check(out).strip() == "main module done"
    assert "non-daemon green threads could not finish" in out.stderr
    assert "stuck" in out.stderr


def test_objects_made_before_patching_are_adopted():
    out = run(
        """
        import logging, sys, threading, time
        import concurrent.futures.thread as futures_thread
        import functools, reprlib, tempfile, multiprocessing.dummy

        logging.basicConfig(stream=sys.stdout, format="%(threadName)s: %(message)s")
        early_handler = logging.getLogger().handlers[0]
        real_lock = early_handler.lock
        early = threading.Thread(target=lambda: logging.warning("started after patching"))
        release = threading.Event()
        real = threading.Thread(target=release.wait, name="real")
        real.start()

        import greenpatch, _thread
        greenpatch.patch_all(warn_late=False)

        assert early_handler.lock is not real_lock
        assert type(early_handler.lock) is _thread.RLock
        assert type(logging._lock) is _thread.RLock
        assert isinstance(futures_thread._global_shutdown_lock, _thread.LockType)
        # Standard-library modules that hold originals were rebound.
        assert functools.RLock is _thread.RLock and reprlib.get_ident is _thread.get_ident
        assert isinstance(tempfile._once_lock, _thread.LockType)
        import queue
        assert multiprocessing.dummy.Queue is queue.Queue is multiprocessing.dummy.JoinableQueue

        early.start()          # made before patching, runs as a green thread
        early.join(5)
        assert not early.is_alive()

        # A real thread that was running already: joining it lets greenlets run.
        ticks = []
        ticker = greenpatch.spawn(lambda: [ticks.append(time.sleep(0.01)) for _ in range(10)])
        greenpatch.spawn_later(0.05, release.set)
        real.join(5)
        assert not real.is_alive() and len(ticks) >= 3, len(ticks)
        ticker.join()
        print("done")
        """,
        patch=False,
    )
    lines = check(out).splitlines()
    assert lines[0].endswith(": started after patching")
    assert lines[0].startswith("Thread-1")  # 3.10+ adds " (<lambda>)"
    assert lines[1:] == ["done"]


def test_greenlets_not_started_by_threading_get_dummy_threads_that_go_away():
    out = run(
        """
        import threading
        import greenpatch
        names = []
        tasks = [greenpatch.spawn(lambda: names.append(threading.current_thread().name))
                 for _ in range(200)]
        greenpatch.joinall(tasks)
        greenpatch.sleep(0.01)
        assert all(name.startswith("Dummy-") for name in names) and len(set(names)) == 200
        assert threading.enumerate() == [threading.main_thread()], threading.enumerate()
        print("ok")
        """
    )
    assert check(out).strip() == "ok"


def test_keyboard_interrupt_or_system_exit_in_a_green_thread_ends_only_that_thread():
    # As in CPython: raised by a thread's own code, they end that thread and go
    # to threading.excepthook (which ignores SystemExit); the program goes on.
    # The same for a thread started with _thread, which reports to
    # sys.unraisablehook (SystemExit quietly).
    out = run(
        """
        import _thread, sys, threading, time
        def interrupted():
            time.sleep(0.01)
            raise KeyboardInterrupt("from the thread")
        def exiting():
            time.sleep(0.01)
            raise SystemExit(3)
        seen = []
        threading.excepthook = lambda args: seen.append((args.exc_type.__name__, args.thread.name))
        for target, name in ((interrupted, "ki"), (exiting, "exit")):
            t = threading.Thread(target=target, name=name)
            t.start()
            t.join(5)
            print(name, "joined", t.is_alive())
        print(seen)

        unraisable, reported = [], threading.Event()
        def unraisablehook(args):
            unraisable.append(args.exc_type.__name__)
            reported.set()
        sys.unraisablehook = unraisablehook
        def raw(exc):
            raise exc
        # Threads run in the order they start: the quiet SystemExit comes first.
        _thread.start_new_thread(raw, (SystemExit,))
        _thread.start_new_thread(raw, (KeyboardInterrupt,))
        reported.wait(5)
        print(unraisable)
        """
    )
    assert check(out).splitlines() == [
        "ki joined False",
        "exit joined False",
        "[('KeyboardInterrupt', 'ki'), ('SystemExit', 'exit')]",
        "['KeyboardInterrupt']",
    ]


def test_fork_child_sees_only_the_forking_thread():
    out = run(
        """
        import os, threading
        release, waiting = threading.Event(), threading.Event()
        def wait():
            waiting.set()
            release.wait()
        blocked = threading.Thread(target=wait)
        blocked.start()
        waiting.wait()  # blocked on release when the process forks
        pid = os.fork()
        if pid == 0:
            ok = not blocked.is_alive() and threading.enumerate() == [threading.main_thread()]
            # flush: os._exit below drops what stdout still buffers.
            child = threading.Thread(
                target=print, args=("child thread runs",), kwargs={"flush": True}
            )
            child.start(); child.join()
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        release.set()
        blocked.join(5)
        code = os.waitstatus_to_exitcode(status)
        print("child exit", code, "parent thread alive", blocked.is_alive())
        """
    )
    assert check(out).splitlines() == [
        "child thread runs",
        "child exit 0 parent thread alive False",
    ]
