"""The green ``os`` twin (fork, waitpid, wait, nb_read/nb_write), in fresh patched interpreters."""

from __future__ import annotations

import textwrap

from tests.patcher._interpreter import run_script

PRELUDE = """
import greenpatch
greenpatch.patch_all()
import os, signal, socket, sys, time
import greenpatch as gp
from greenpatch.patcher.green import os as green_os

ticks = []
def _ticker():
    while True:
        ticks.append(1)
        time.sleep(0.01)
gp.spawn(_ticker)
"""


def run_patched(code: str) -> str:
    return run_script(PRELUDE + textwrap.dedent(code))


def test_fork_gives_the_child_a_working_hub_threadpool_and_patches():
    out = run_patched(
        """
        import subprocess
        from greenpatch.hub.threadpool import get_threadpool
        blocking_sleep = greenpatch.original("time", "sleep")
        # A live pool (a worker thread exists) and a resolved name before the fork.
        assert get_threadpool().spawn(lambda: 21 * 2).get() == 42
        socket.getaddrinfo("localhost", 80)
        pid = os.fork()
        if pid == 0:
            try:
                results = [gp.spawn(time.sleep, 0.05) for _ in range(10)]
                gp.joinall(results)
                pool = get_threadpool()             # the parent's pool, reset
                jobs = [pool.spawn(blocking_sleep, 0.05) for _ in range(4)]
                jobs.append(pool.spawn(lambda: 6 * 7))
                assert [job.get(timeout=10) for job in jobs] == [None] * 4 + [42]
                socket.getaddrinfo("localhost", 80)
                a, b = socket.socketpair()
                gp.spawn(lambda: b.sendall(b.recv(10).upper()))
                a.sendall(b"ping")
                assert a.recv(10) == b"PING"
                assert subprocess.run(["sh", "-c", "exit 5"]).returncode == 5
                grandchild = os.fork()
                if grandchild == 0:
                    os._exit(6)
                assert os.WEXITSTATUS(os.waitpid(grandchild, 0)[1]) == 6
                os._exit(0)
            except BaseException:
                import traceback
                traceback.print_exc()
                os._exit(1)
        before = len(ticks)
        waited, status = os.waitpid(pid, 0)
        assert waited == pid and os.WIFEXITED(status), status
        print("child exit", os.WEXITSTATUS(status), "ticked", len(ticks) - before > 5)
        """
    )
    assert out == "child exit 0 ticked True"


def test_waitpid_semantics_match_the_stdlib():
    out = run_patched(
        """
        def child(code, delay):
            pid = os.fork()
            if pid == 0:
                blocking = greenpatch.original("time", "sleep")
                blocking(delay)
                os._exit(code)
            return pid

        slow = child(3, 0.3)
        assert os.waitpid(slow, os.WNOHANG) == (0, 0)
        before = len(ticks)
        pid, status = os.waitpid(slow, 0)
        assert (pid, os.WEXITSTATUS(status)) == (slow, 3), (pid, status)
        assert len(ticks) - before >= 10, len(ticks) - before      # cooperative
        for bad in (slow, 1):                  # reaped already / not our child
            try:
                os.waitpid(bad, 0)
            except ChildProcessError:
                pass
            else:
                raise AssertionError(bad)

        # os.wait() and waitpid(-1): any child.
        first = child(4, 0.05)
        pid, status = os.wait()
        assert (pid, os.WEXITSTATUS(status)) == (first, 4)

        # Two greenlets wait for one child: one gets the status, the other ECHILD.
        shared = child(5, 0.1)
        outcomes = []
        def waiter():
            try:
                outcomes.append(os.WEXITSTATUS(os.waitpid(shared, 0)[1]))
            except ChildProcessError:
                outcomes.append("ECHILD")
        gp.joinall([gp.spawn(waiter), gp.spawn(waiter)])
        assert sorted(map(str, outcomes)) == ["5", "ECHILD"], outcomes

        # The ECHILD trap: while one child is waited for, libev reaps every exited
        # child; the statuses of the others must not be lost.
        long_one = child(7, 0.4)
        quick = [child(10 + i, 0.01 * i) for i in range(5)]
        assert os.WEXITSTATUS(os.waitpid(long_one, 0)[1]) == 7
        for i, pid in enumerate(quick):
            assert os.WEXITSTATUS(os.waitpid(pid, 0)[1]) == 10 + i
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass                                   # collected once, as the stdlib
            else:
                raise AssertionError("status handed out twice")

        # A plain waitpid collecting a watched child behind its watcher's back.
        sneaky = child(8, 0.05)
        real_waitpid = greenpatch.original("os", "waitpid")
        assert os.WEXITSTATUS(real_waitpid(sneaky, 0)[1]) == 8
        try:
            os.waitpid(sneaky, 0)
        except ChildProcessError:
            pass
        assert not green_os._reaper.watching(sneaky)
        print("ok")
        """
    )
    assert out == "ok"


def test_waitpid_in_another_os_thread_waits_on_its_own_hub():
    out = run_patched(
        """
        from greenpatch.hub.event import Event
        start_thread = greenpatch.original("_thread", "start_new_thread")
        real_fork = greenpatch.original("os", "fork")
        # A watched child in the main thread keeps libev reaping every child...
        main_child = os.fork()
        if main_child == 0:
            greenpatch.original("time", "sleep")(0.5)
            os._exit(1)
        # ... including this one, made and waited for by a real thread.
        result = []
        done = Event()
        def in_thread():
            try:
                pid = real_fork()
                if pid == 0:
                    os._exit(9)
                result.append(os.WEXITSTATUS(os.waitpid(pid, 0)[1]))
            except BaseException as exc:
                result.append(repr(exc))
            done.set()
        start_thread(in_thread, ())
        assert done.wait(10)
        assert result == [9], result
        assert os.WEXITSTATUS(os.waitpid(main_child, 0)[1]) == 1
        print("ok")
        """
    )
    assert out == "ok"


def test_nb_read_and_nb_write_wait_on_the_hub():
    out = run_patched(
        """
        r, w = os.pipe()
        assert green_os.make_nonblocking(r) and green_os.make_nonblocking(w)
        assert not green_os.make_nonblocking(r)
        got = []
        def reader():
            while True:
                data = green_os.nb_read(r, 65536)
                if not data:
                    return
                got.append(len(data))
        job = gp.spawn(reader)
        payload = b"x" * (1 << 20)               # far more than a pipe holds
        view = memoryview(payload)
        while view:
            view = view[green_os.nb_write(w, view):]
        os.close(w)
        job.join()
        print(sum(got), len(ticks) >= 0)
        """
    )
    assert out == f"{1 << 20} True"


def test_a_child_exit_reaches_the_wakeup_fd_and_the_sigchld_handler():
    # asyncio's SafeChildWatcher/FastChildWatcher install a SIGCHLD handler and
    # learn of exits from the byte CPython writes to signal.set_wakeup_fd's
    # descriptor; while libev owns SIGCHLD (the green Popen watches its child)
    # that byte must still come.
    out = run_patched(
        """
        import select, subprocess
        r, w = socket.socketpair()
        r.setblocking(False); w.setblocking(False)
        signal.set_wakeup_fd(w.fileno())
        calls = []
        signal.signal(signal.SIGCHLD, lambda signum, frame: calls.append(signum))
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        ready, _, _ = select.select([r], [], [], 30)
        got = list(r.recv(16)) if ready else []
        proc.wait()
        deadline = time.monotonic() + 30
        while not calls and time.monotonic() < deadline:
            time.sleep(0.01)
        print(signal.SIGCHLD in got, calls[:1] == [signal.SIGCHLD])
        """
    )
    assert out == "True True"
