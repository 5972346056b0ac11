"""The green ``os.fork`` right after ``patch_all()``, with greenlets blocked and the pool busy.

Each test runs in a fresh patched interpreter.  The contract is the hub's (see
tests/hub/test_fork.py): the child's hub, sockets and thread pool work; the
parent's blocked greenlets exist in the child but stay blocked while nothing
arrives for them (a greenlet waiting on a pool call is told with RuntimeError);
the parent is unaffected.  The child leaves with ``os._exit``; the parent checks
its status with the green ``os.waitpid``, during which its other greenlets run.
"""

from __future__ import annotations

import textwrap

from tests.patcher._interpreter import run_script

PRELUDE = """
import greenpatch
greenpatch.patch_all()
import os, socket, sys, threading, time, traceback
import greenpatch as gp
from greenpatch.hub.threadpool import get_threadpool

blocking_sleep = greenpatch.original("time", "sleep")
real_lock = greenpatch.original("_thread", "allocate_lock")

def child_work():
    # Greenlets and timers.
    naps = [gp.spawn(time.sleep, 0.01) for _ in range(20)]
    gp.joinall(naps)
    assert all(g.successful() for g in naps)
    # A loopback server and client, both green.
    server = socket.create_server(("127.0.0.1", 0))
    def serve():
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(100):
                conn.sendall(data.upper())
    srv = gp.spawn(serve)
    with socket.create_connection(server.getsockname(), timeout=10) as client:
        for n in range(10):
            client.sendall(b"ping%d" % n)
            assert client.recv(100) == b"PING%d" % n
    srv.get(timeout=10)
    server.close()
    # A fresh pool: several blocking calls at once, on new threads.
    pool = get_threadpool()
    jobs = [pool.spawn(blocking_sleep, 0.05) for _ in range(4)]
    assert [job.get(timeout=10) for job in jobs] == [None] * 4
    socket.getaddrinfo("127.0.0.1", 80)   # the resolver uses the pool too

def fork_and_check(child):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child()
            code = 0
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            os._exit(code)
    waited, status = os.waitpid(pid, 0)
    assert waited == pid, (waited, pid)
    assert os.waitstatus_to_exitcode(status) == 0, status
"""


def run_patched(code: str) -> str:
    return run_script(PRELUDE + textwrap.dedent(code))


def test_green_fork_with_greenlets_blocked_on_sockets_and_a_busy_pool():
    out = run_patched(
        """
        ticks = []
        def ticker():
            while True:
                ticks.append(1)
                time.sleep(0.005)
        gp.spawn(ticker)

        pairs = [socket.socketpair() for _ in range(3)]
        readers = [gp.spawn(a.recv, 100) for a, _ in pairs]
        gate = real_lock()
        gate.acquire()
        busy = get_threadpool().spawn(gate.acquire, True, 30)   # a real thread, blocked
        outcome = []
        def wait_busy():
            try:
                outcome.append(busy.get())
            except RuntimeError as exc:
                outcome.append(exc)
        waiter = gp.spawn(wait_busy)
        time.sleep(0.05)
        assert get_threadpool().size == 1

        def child():
            assert get_threadpool().size == 0         # the busy thread is not here
            waiter.join(10)                           # told, not left hanging
            assert isinstance(outcome[0], RuntimeError), outcome
            child_work()
            for _ in range(5):
                time.sleep(0.01)
            assert not any(g.ready() for g in readers)   # nothing came for them
            gp.killall(readers, timeout=10)

        before = len(ticks)
        fork_and_check(child)
        print("parent ran while waiting:", len(ticks) - before > 0)
        print("readers still blocked:", not any(g.ready() for g in readers))
        for n, (_, b) in enumerate(pairs):
            b.sendall(b"data%d" % n)
        print([g.get(timeout=10) for g in readers])
        print("busy still running:", not busy.ready() and outcome == [])
        gate.release()
        print("busy finished:", busy.get(timeout=10), waiter.get(timeout=10), outcome)
        """
    )
    assert out.splitlines() == [
        "parent ran while waiting: True",
        "readers still blocked: True",
        "[b'data0', b'data1', b'data2']",
        "busy still running: True",
        "busy finished: True None [True]",
    ]


def test_green_fork_from_a_green_thread_while_others_wait_on_a_queue():
    out = run_patched(
        """
        import queue
        jobs = queue.Queue()
        results = []
        def consumer():
            while (item := jobs.get()) is not None:
                results.append(item * 2)
        consumers = [threading.Thread(target=consumer) for _ in range(3)]
        for t in consumers:
            t.start()

        def child():
            child_work()
            # The other green threads exist here, blocked on the queue: they do
            # run if the child feeds it (the child's own copy of the queue).
            jobs.put(5)
            time.sleep(0.05)
            assert results == [10], results

        def forker():
            fork_and_check(child)
            results.append("forked")
        thread = threading.Thread(target=forker)
        thread.start()
        thread.join(30)
        print(results)
        for n in range(3):
            jobs.put(n)
        for _ in consumers:
            jobs.put(None)
        for t in consumers:
            t.join(30)
        print(sorted(results, key=str), any(t.is_alive() for t in consumers))
        """
    )
    assert out.splitlines() == ["['forked']", "[0, 2, 4, 'forked'] False"]
