"""Hubs in several OS threads, busy, ended and destroyed in every order.

Three hubs -- the main thread's and two others -- each keep greenlets busy
(sleeps, a socket pair ping-pong, thread pool calls) until their turn to end;
then the hub is destroyed while the others still run.  All six orders are
played in one fresh interpreter (the main thread's hub is destroyed, and must
be replaced, several times); after each, descriptors and threads are back to
the baseline, and the main thread gets a working hub again.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = r"""
import _thread, itertools, os, socket, threading, time
import greenpatch
from greenpatch import get_hub, sleep, spawn, wait_read
from greenpatch.hub.hub import get_hub_if_exists
from greenpatch.hub.threadpool import get_threadpool

WAIT = 30.0

def fds():
    return sorted(os.listdir("/proc/self/fd"))

def wait_until(predicate, what):
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)

def busy_hub(stop, counters, name):
    # Greenlets that keep this hub working until stop() holds; returns them.
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    def ping():
        n = 0
        while not stop():
            a.send(b"%d" % n)
            wait_read(a.fileno(), timeout=WAIT)
            assert a.recv(100) == b"%d" % (n + 1)
            n += 2
            counters[name + ".ping"] = n
        a.send(b"end")
    def pong():
        while True:
            wait_read(b.fileno(), timeout=WAIT)
            data = b.recv(100)
            if data == b"end":
                return
            b.send(b"%d" % (int(data) + 1))
    def napper():
        while not stop():
            sleep(0.001)
            counters[name + ".naps"] = counters.get(name + ".naps", 0) + 1
    def pooled():
        pool = get_threadpool()
        while not stop():
            assert pool.apply(sum, ([1, 2, 3],)) == 6
            counters[name + ".pool"] = counters.get(name + ".pool", 0) + 1
            sleep(0.002)
    glets = [spawn(ping), spawn(pong), spawn(napper), spawn(pooled)]
    return glets, (a, b)

def until_busy(counters, name):
    # Cooperatively, until every kind of work has gone round at least once.
    deadline = time.monotonic() + WAIT
    while not all(counters.get(f"{name}.{part}") for part in ("ping", "naps", "pool")):
        assert time.monotonic() < deadline, (name, counters)
        sleep(0.002)

def finish(glets, socks, counters, name):
    for glet in glets:
        glet.get(timeout=WAIT)   # every greenlet ended cleanly, no error
    for sock in socks:
        sock.close()
    for part in ("ping", "naps", "pool"):
        assert counters.get(f"{name}.{part}", 0) > 0, (name, part, counters)

def play(order):
    counters = {}
    may_end = {name: threading.Event() for name in ("t1", "t2")}
    ended = {name: threading.Event() for name in ("t1", "t2")}
    started = {name: threading.Event() for name in ("t1", "t2")}
    errors = []

    def worker(name):
        try:
            glets, socks = busy_hub(may_end[name].is_set, counters, name)
            until_busy(counters, name)
            started[name].set()
            while not may_end[name].is_set():
                sleep(0.002)
            finish(glets, socks, counters, name)
            get_hub().destroy()
            assert get_hub_if_exists() is None
        except BaseException as exc:
            import traceback
            errors.append(traceback.format_exc())
        finally:
            ended[name].set()

    threads = {
        name: threading.Thread(target=worker, args=(name,), daemon=True) for name in ("t1", "t2")
    }
    for thread in threads.values():
        thread.start()
    main_stop = [False]
    main_glets, main_socks = busy_hub(lambda: main_stop[0], counters, "main")
    main_alive = True
    for name in order:
        if name == "main":
            until_busy(counters, "main")
            main_stop[0] = True
            finish(main_glets, main_socks, counters, "main")
            get_hub().destroy()
            assert get_hub_if_exists() is None
            main_alive = False
            continue
        # The main hub keeps running (cooperative waits) until its own turn.
        if main_alive:
            while not started[name].is_set():
                sleep(0.002)
        else:
            assert started[name].wait(WAIT)
        may_end[name].set()
        if main_alive:
            while not ended[name].is_set():
                sleep(0.002)
        else:
            assert ended[name].wait(WAIT)
    for thread in threads.values():
        thread.join(WAIT)
        assert not thread.is_alive()
    assert not errors, errors[0]

# The main hub and its pool exist before the baseline is taken: their
# descriptors belong to the process from then on (the default loop is kept).
get_threadpool().apply(int, ("1",))
baseline_fds = fds()
for order in itertools.permutations(["main", "t1", "t2"]):
    play(order)
    # Destroyed hubs killed their pools: the worker threads leave promptly.
    wait_until(lambda: _thread._count() == 0, f"threads left after {order}")
    assert fds() == baseline_fds, (order, baseline_fds, fds())
    # Whatever the order, the main thread has a working hub afterwards.
    hub = get_hub()
    assert hub.loop.default
    assert spawn(lambda: (sleep(0.001), 7)[1]).get(timeout=WAIT) == 7
    assert get_threadpool().apply(pow, (2, 5)) == 32
    print(" ".join(order), "ok")
"""


def test_hubs_of_three_threads_end_in_every_order_without_leaks():
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", textwrap.dedent(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    assert out.stdout.splitlines() == [
        "main t1 t2 ok",
        "main t2 t1 ok",
        "t1 main t2 ok",
        "t1 t2 main ok",
        "t2 main t1 ok",
        "t2 t1 main ok",
    ]
    assert "failed with" not in out.stderr, out.stderr
