"""Thread start and starvation under ``patch_all()`` (issue 18, pattern 5).

Green threads are not preempted, so two places must yield by themselves:
``Thread.start()`` must return to its caller before the new thread's target
runs (a target that spins until the caller sets a flag would never let it), and
a ``get()`` that keeps finding items ready (a pool worker whose tasks resubmit
themselves) must let the other threads run now and then.  The C
``_queue.SimpleQueue`` must be cooperative too.  Each check runs in a fresh
interpreter; a hang fails through faulthandler's watchdog.
"""

from __future__ import annotations

from tests.patcher._interpreter import run_script

PATCH = "import greenpatch\ngreenpatch.patch_all(warn_late=False)\n"
#: faulthandler's watchdog is a C thread: it fires even when no green thread yields.
WATCHDOG = "import faulthandler\nfaulthandler.dump_traceback_later(30, exit=True)\n"


def script(code: str) -> str:
    return run_script(WATCHDOG + PATCH + code)


def test_start_returns_before_the_target_runs():
    out = script(
        """
import threading
stop = threading.Event()
ran = []

def spin():
    ran.append(threading.get_ident())
    while not stop.is_set():  # never blocks, never yields
        pass

t = threading.Thread(target=spin)
t.start()
# start() returned although the target spins: it is alive, named and listed,
# and (as with OS threads, where the new thread usually runs first) it began.
print(t.is_alive(), t.ident is not None, t in threading.enumerate())
print(ran == [t.ident])
stop.set()
t.join()
print(t.is_alive())
"""
    )
    assert out.splitlines() == ["True True True", "True", "False"]


def test_a_thread_started_in_a_block_runs_its_first_call_before_the_starter_goes_on():
    # As with OS threads in practice (the new thread holds the GIL first): a
    # test that starts a thread inside a mock.patch block and leaves the block
    # at once relies on the thread's first call seeing the mock (redis-py's
    # PubSubWorkerThread tests hung when start() let the starter run first).
    out = script(
        """
import threading
from unittest import mock

class Source:
    def get(self):
        return "real"

source = Source()
seen = []
stop = threading.Event()

def worker():
    while not stop.is_set():
        value = source.get()
        seen.append(value)
        if value == "mocked":
            stop.set()

with mock.patch.object(source, "get", return_value="mocked"):
    t = threading.Thread(target=worker, daemon=True)
    t.start()
finished = stop.wait(10)
t.join(10)
print(finished, seen[:1])
"""
    )
    assert out == "True ['mocked']"


def test_executor_tasks_that_resubmit_themselves_do_not_starve_other_threads():
    out = script(
        """
import threading, time
from concurrent.futures import ThreadPoolExecutor

stop = threading.Event()
done = threading.Event()
ran = [0]
pool = ThreadPoolExecutor(1)

def task():
    ran[0] += 1
    if stop.is_set():
        done.set()
    else:
        pool.submit(task)  # the worker always finds the next task ready

pool.submit(task)
setter = threading.Thread(target=stop.set)
setter.start()
setter.join()
time.sleep(0.001)  # the main thread too gets to run (a timer wakes it)
print(stop.is_set(), done.wait(20), ran[0] > 0)
pool.shutdown()
"""
    )
    assert out == "True True True"


def test_queue_get_that_finds_items_ready_lets_other_threads_run():
    out = script(
        """
import queue, threading, time

for cls in (queue.Queue, queue.SimpleQueue, queue.LifoQueue):
    q = cls()
    stop = threading.Event()

    def worker():
        while True:
            item = q.get()
            if item is None:
                return
            q.put(None if stop.is_set() else item)  # always an item ready

    q.put(1)
    t = threading.Thread(target=worker)
    t.start()
    time.sleep(0.001)  # resumed by a timer while the worker keeps getting
    stop.set()
    t.join()
    print(cls.__name__, "stopped", t.is_alive())
"""
    )
    assert out.splitlines() == [
        "Queue stopped False",
        "SimpleQueue stopped False",
        "LifoQueue stopped False",
    ]


def test_c_simple_queue_is_cooperative():
    out = script(
        """
import queue, threading, time
import _queue
from _queue import SimpleQueue  # imported after patching: the green class

print(SimpleQueue is _queue.SimpleQueue is queue.SimpleQueue)
print(SimpleQueue is not greenpatch.original("_queue", "SimpleQueue"))
q = SimpleQueue()

def put_later():
    time.sleep(0.01)
    q.put("from a green thread")

t = threading.Thread(target=put_later)
t.start()
print(q.get(timeout=20))  # waits for the green thread instead of blocking it out
t.join()
try:
    q.get(timeout=0.01)
except queue.Empty:  # the stdlib's exception, as _queue.Empty is
    print("empty")
print(_queue.Empty is queue.Empty)
"""
    )
    assert out.splitlines() == ["True", "True", "from a green thread", "empty", "True"]


def test_a_thread_started_right_before_a_fork_does_not_run_in_the_child():
    # The target ran in the parent (before start() returned); the child, which
    # only the forking thread survives into, must not run it again.
    out = script(
        """
import os, sys, threading
reports = []
sys.unraisablehook = lambda args: reports.append(args.exc_type.__name__)
threading.excepthook = lambda args: reports.append(args.exc_type.__name__)
ran = []
t = threading.Thread(target=lambda: ran.append(os.getpid()))
t.start()
pid = os.fork()
if pid == 0:
    other = threading.Thread(target=int)  # the child's hub runs a while
    other.start(); other.join()
    ok = ran == [os.getppid()] and not t.is_alive() and not reports
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
t.join()
print(os.waitstatus_to_exitcode(status), ran == [os.getpid()], reports)
"""
    )
    assert out == "0 True []"
