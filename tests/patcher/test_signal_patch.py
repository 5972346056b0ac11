"""The green ``signal`` twin, in fresh patched interpreters (never in the pytest process)."""

from __future__ import annotations

import textwrap

from tests.patcher._interpreter import run_script

PRELUDE = """
import greenpatch
greenpatch.patch_all()
import os, signal, socket, sys, time
import greenlet
from greenpatch import get_hub, spawn
"""


def run_patched(code: str, returncode: int = 0) -> str:
    return run_script(PRELUDE + textwrap.dedent(code), returncode=returncode)


def test_handler_runs_in_a_greenlet_of_the_main_hub_and_may_block():
    out = run_patched(
        """
        ticks = []
        def ticker():
            while True:
                ticks.append(time.monotonic())
                time.sleep(0.01)
        spawn(ticker)
        seen = []
        def handler(signum, frame):
            seen.append((signum, greenlet.getcurrent() is not get_hub(), frame is not None))
            before = len(ticks)
            time.sleep(0.1)                      # blocking is fine here
            seen.append(len(ticks) - before)
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
        assert signal.signal(signal.SIGUSR1, handler) is signal.SIG_DFL
        assert signal.getsignal(signal.SIGUSR1) is handler
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.3)
        assert seen[0] == (signal.SIGUSR1, True, True), seen
        assert seen[1] >= 3, seen                # the ticker ran while the handler slept

        # Replacing the handler returns the previous one; the next signal runs the new one.
        second = []
        assert signal.signal(signal.SIGUSR1, lambda s, f: second.append(s)) is handler
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.1)
        assert second == [signal.SIGUSR1] and len(seen) == 2, (second, seen)
        print("ok")
        """
    )
    assert out == "ok"


def test_an_exception_from_a_handler_reaches_the_main_greenlet_alarm_style():
    out = run_patched(
        """
        class Alarm(Exception):
            pass
        def on_alarm(signum, frame):
            raise Alarm(signum)
        signal.signal(signal.SIGALRM, on_alarm)

        # setitimer: a blocking sleep of the main greenlet is interrupted.
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        start = time.monotonic()
        try:
            time.sleep(5)
        except Alarm as exc:
            assert exc.args == (signal.SIGALRM,)
            assert 0.15 < time.monotonic() - start < 2, time.monotonic() - start
        else:
            raise AssertionError("no Alarm")

        # signal.alarm: a recv that would block forever is interrupted too.
        a, b = socket.socketpair()
        signal.alarm(1)
        start = time.monotonic()
        try:
            a.recv(10)
        except Alarm:
            assert 0.8 < time.monotonic() - start < 3, time.monotonic() - start
        else:
            raise AssertionError("no Alarm")
        b.sendall(b"still")
        assert a.recv(10) == b"still"            # the socket survived the interruption

        # SystemExit from a SIGTERM handler ends the program with its code.
        signal.signal(signal.SIGTERM, lambda s, f: sys.exit(7))
        print("ok", flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        print("not reached")
        """,
        returncode=7,
    )
    assert out == "ok"


def test_sig_ign_and_sig_dfl_restore_the_real_disposition():
    out = run_patched(
        """
        calls = []
        handler = lambda s, f: calls.append(s)
        signal.signal(signal.SIGUSR2, handler)
        assert signal.signal(signal.SIGUSR2, signal.SIG_IGN) is handler
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_IGN
        os.kill(os.getpid(), signal.SIGUSR2)     # ignored by the kernel: we survive
        time.sleep(0.05)
        assert calls == []
        assert signal.signal(signal.SIGUSR2, signal.SIG_DFL) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGUSR2) is signal.SIG_DFL
        # Back to green, and SIG_DFL once more: the default action kills a child.
        signal.signal(signal.SIGUSR2, handler)
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)
        pid = os.fork()
        if pid == 0:
            os.kill(os.getpid(), signal.SIGUSR2)
            time.sleep(5)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGUSR2, status
        # default_int_handler is Python's own: installed for real.
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        signal.signal(signal.SIGINT, handler)
        assert signal.signal(signal.SIGINT, signal.default_int_handler) is handler
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        print("ok")
        """
    )
    assert out == "ok"


def test_errors_are_the_stdlib_errors():
    out = run_patched(
        """
        import _thread
        for args, error in [
            ((signal.SIGKILL, lambda s, f: None), OSError),
            ((signal.SIGSTOP, lambda s, f: None), OSError),
            ((0, lambda s, f: None), ValueError),
            ((10_000, lambda s, f: None), ValueError),
            ((signal.SIGUSR1, "not callable"), TypeError),
        ]:
            try:
                signal.signal(*args)
            except error as exc:
                print(type(exc).__name__, exc)
            else:
                raise AssertionError(args)
        result = []
        def in_a_thread():
            try:
                signal.signal(signal.SIGUSR1, lambda s, f: None)
            except ValueError as exc:
                result.append(str(exc))
        start = greenpatch.original("_thread", "start_new_thread")
        start(in_a_thread, ())
        deadline = time.monotonic() + 5
        while not result and time.monotonic() < deadline:
            time.sleep(0.01)
        assert result and "main thread" in result[0], result
        print("ok")
        """
    )
    assert out.endswith("ok")
    assert "signal number out of range" in out


def test_keyboard_interrupt_reaches_the_main_greenlet():
    out = run_patched(
        """
        ticks = []
        def ticker():
            while True:
                ticks.append(1)
                time.sleep(0.01)
        spawn(ticker)
        def interrupt():
            time.sleep(0.1)
            os.kill(os.getpid(), signal.SIGINT)
        spawn(interrupt)
        try:
            time.sleep(5)
        except KeyboardInterrupt:
            print("interrupted", len(ticks) > 3)
        """
    )
    assert out == "interrupted True"


def test_sigchld_keeps_the_stdlib_behaviour():
    out = run_patched(
        """
        calls = []
        def on_child(signum, frame):
            calls.append(signum)
        signal.signal(signal.SIGCHLD, on_child)
        assert signal.getsignal(signal.SIGCHLD) is on_child
        # A green fork: its child watcher owns SIGCHLD while it runs, and the
        # green os calls the Python handler for it.
        pid = os.fork()
        if pid == 0:
            os._exit(3)
        assert os.WEXITSTATUS(os.waitpid(pid, 0)[1]) == 3
        time.sleep(0.05)
        assert calls, calls
        # No watcher left: Python's own handler is back in charge.
        calls.clear()
        pid = greenpatch.original("os", "fork")()
        if pid == 0:
            os._exit(4)
        time.sleep(0.2)
        assert calls == [signal.SIGCHLD], calls
        assert os.WEXITSTATUS(os.waitpid(pid, 0)[1]) == 4
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        assert signal.getsignal(signal.SIGCHLD) is signal.SIG_DFL
        print("ok")
        """
    )
    assert out == "ok"


# -- issue 18, pattern 4: handlers run between bytecodes, as in CPython --------
# Each test installs its handlers itself: a shell's ``cmd &`` starts the tests
# with SIGINT ignored, and nothing here may depend on inherited dispositions.


def test_a_handler_runs_while_the_main_greenlet_only_polls():
    out = run_patched(
        """
        import select
        a, b = socket.socketpair()
        a.setblocking(False)
        poller = select.poll()
        poller.register(a, select.POLLIN)
        def try_recv():
            try:
                a.recv(10)
            except BlockingIOError:
                pass
        main = greenlet.getcurrent()
        for name, poll_once in [
            ("select", lambda: select.select([a], [], [], 0)),
            ("poll", lambda: poller.poll(0)),
            ("recv", try_recv),
        ]:
            seen = []
            signal.signal(signal.SIGALRM, lambda s, f: seen.append(greenlet.getcurrent()))
            signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
            deadline = time.monotonic() + 30
            while not seen and time.monotonic() < deadline:
                poll_once()             # never blocks: the hub never runs
            signal.setitimer(signal.ITIMER_REAL, 0)
            # In the main greenlet, as CPython runs it in the main thread.
            assert seen and seen[0] is main, (name, seen)
        print("ok")
        """
    )
    assert out == "ok"


def test_a_raising_alarm_handler_interrupts_a_busy_main_greenlet():
    out = run_patched(
        """
        class Alarm(Exception):
            pass
        def on_alarm(signum, frame):
            raise Alarm
        signal.signal(signal.SIGALRM, on_alarm)
        ticks = []
        def ticker():
            while True:
                ticks.append(1)
                time.sleep(0.001)
        spawn(ticker)
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        try:
            while True:                 # pytest-timeout's case: a test that spins
                pass
        except Alarm:
            pass
        # The hub is fine: the ticker runs again once we block.
        before = len(ticks)
        deadline = time.monotonic() + 30
        while len(ticks) < before + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(ticks) >= before + 3, (before, len(ticks))
        print("ok")
        """
    )
    assert out == "ok"


def test_interrupt_main_calls_the_users_sigint_handler():
    out = run_patched(
        """
        import _thread
        calls = []
        def on_int(signum, frame):
            calls.append((signum, greenlet.getcurrent()))
        signal.signal(signal.SIGINT, on_int)
        main = greenlet.getcurrent()

        # From the main greenlet itself: the handler runs at the next bytecodes.
        _thread.interrupt_main()
        deadline = time.monotonic() + 30
        while not calls and time.monotonic() < deadline:
            pass
        assert calls == [(signal.SIGINT, main)], calls

        # From a real OS thread while the main greenlet sleeps on the hub.
        calls.clear()
        start = greenpatch.original("_thread", "start_new_thread")
        start(_thread.interrupt_main, ())
        deadline = time.monotonic() + 30
        while not calls and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [c[0] for c in calls] == [signal.SIGINT], calls
        print("ok")
        """
    )
    assert out == "ok"


def test_green_interrupt_main_wakes_a_hub_blocked_in_the_kernel():
    # What green ``_thread.interrupt_main`` is to call: a recv that nothing
    # else would ever end is interrupted by the user's SIGINT handler.
    out = run_patched(
        """
        from greenpatch.patcher.green.signal import interrupt_main
        class Interrupted(Exception):
            pass
        def on_int(signum, frame):
            raise Interrupted(signum)
        signal.signal(signal.SIGINT, on_int)
        a, b = socket.socketpair()
        start = greenpatch.original("_thread", "start_new_thread")
        start(interrupt_main, ())
        try:
            a.recv(10)
        except Interrupted as exc:
            assert exc.args == (signal.SIGINT,)
        b.sendall(b"after")
        assert a.recv(10) == b"after"
        print("ok")
        """
    )
    assert out == "ok"


def test_a_raising_handler_interrupts_blocking_waits_and_the_hub_goes_on():
    out = run_patched(
        """
        import select, selectors, threading
        class Alarm(Exception):
            pass
        def on_alarm(signum, frame):
            raise Alarm(signum)
        signal.signal(signal.SIGALRM, on_alarm)
        ticks = []
        def ticker():
            while True:
                ticks.append(1)
                time.sleep(0.001)
        spawn(ticker)
        a, b = socket.socketpair()
        selector = selectors.DefaultSelector()
        selector.register(a, selectors.EVENT_READ)
        lock = threading.Lock()
        lock.acquire()
        waits = {
            "select": lambda: select.select([a], [], []),
            "selector": lambda: selector.select(),
            "sleep": lambda: time.sleep(60),
            "lock": lambda: lock.acquire(),
            "recv": lambda: a.recv(10),
        }
        for name, wait in waits.items():
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            try:
                wait()
            except Alarm:
                pass
            else:
                raise AssertionError(name + " was not interrupted")
            # The hub goes on: other greenlets run, and later waits work.
            before = len(ticks)
            while len(ticks) < before + 3:
                time.sleep(0.005)
        # A signal taken by another OS thread interrupts the main greenlet's
        # wait all the same.
        def worker():
            own = greenpatch.original("_thread", "get_ident")()
            signal.pthread_kill(own, signal.SIGALRM)
        greenpatch.original("_thread", "start_new_thread")(worker, ())
        try:
            a.recv(10)
        except Alarm:
            pass
        else:
            raise AssertionError("recv was not interrupted")
        b.sendall(b"later")
        assert a.recv(10) == b"later"
        print("ok")
        """
    )
    assert out == "ok"


def test_a_greenlet_other_than_main_is_never_interrupted_by_a_handler():
    out = run_patched(
        """
        class Boom(Exception):
            pass
        where = []
        def handler(signum, frame):
            where.append(greenlet.getcurrent())
            raise Boom
        signal.signal(signal.SIGUSR1, handler)
        task_saw = []
        def task():
            os.kill(os.getpid(), signal.SIGUSR1)   # delivered before kill returns
            for _ in range(1000):                  # bytecodes: CPython checks its flag
                pass
            task_saw.append(list(where))           # not run inside this task
            time.sleep(0)                          # it runs once the task yields
            task_saw.append("finished")
        glet = spawn(task)
        boom = False
        deadline = time.monotonic() + 30
        try:
            while time.monotonic() < deadline:
                time.sleep(0.01)
        except Boom:
            boom = True                            # what it raised went to main
        assert boom, "no Boom"
        glet.join()
        assert task_saw == [[], "finished"], task_saw
        assert where and where[0] is not glet and where[0] is not greenlet.getcurrent()
        print("ok")
        """
    )
    assert out == "ok"


def test_a_signal_taken_by_another_thread_wakes_the_hub_of_a_forked_child():
    out = run_patched(
        """
        class Alarm(Exception):
            pass
        def on_alarm(signum, frame):
            raise Alarm
        signal.signal(signal.SIGALRM, on_alarm)
        time.sleep(0.001)                          # the hub exists before the fork
        pid = os.fork()
        a, b = socket.socketpair()
        def worker():
            own = greenpatch.original("_thread", "get_ident")()
            signal.pthread_kill(own, signal.SIGALRM)
        greenpatch.original("_thread", "start_new_thread")(worker, ())
        try:
            a.recv(1)                              # only the wake-up can end it
        except Alarm:
            pass
        if pid == 0:
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        print("ok")
        """
    )
    assert out == "ok"


def test_a_sigint_taken_while_a_green_thread_runs_interrupts_the_main_greenlet():
    # CPython raises KeyboardInterrupt in the main thread whichever thread
    # runs; a green thread that ran when the signal was checked must not take
    # it (and end with it, as a thread ends on an exception) while main goes on.
    out = run_patched(
        """
        import threading
        signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever we inherited
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        def worker():
            os.kill(os.getpid(), signal.SIGINT)
            total = 0
            for i in range(100000):
                total += i
        thread = threading.Thread(target=worker)
        try:
            thread.start()
            thread.join()
            time.sleep(5)
            print("lost")
        except KeyboardInterrupt:
            print("main interrupted")
        """
    )
    assert out == "main interrupted"
