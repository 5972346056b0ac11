"""Green ``queue``: stdlib semantics, cooperative waits, and what happens after patch_all()."""

from __future__ import annotations

import queue
import subprocess
import sys
import textwrap
import threading
import time
import weakref

import pytest

import greenpatch
from greenpatch.patcher.green import queue as green_queue

HAS_SHUTDOWN = hasattr(queue.Queue, "shutdown")  # 3.13


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_exceptions_are_the_stdlib_classes_and_the_classes_are_stdlib_subclasses():
    assert green_queue.Empty is queue.Empty and green_queue.Full is queue.Full
    assert issubclass(green_queue.Queue, queue.Queue)
    assert issubclass(green_queue.LifoQueue, queue.LifoQueue)
    assert issubclass(green_queue.LifoQueue, green_queue.Queue)
    assert issubclass(green_queue.PriorityQueue, queue.PriorityQueue)
    assert issubclass(green_queue.PriorityQueue, green_queue.Queue)
    assert green_queue.SimpleQueue[int] is not None  # generic, as the stdlib's


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (green_queue.Queue, [3, 1, 2]),
        (green_queue.LifoQueue, [2, 1, 3]),
        (green_queue.PriorityQueue, [1, 2, 3]),
    ],
)
def test_order_and_nonblocking_calls(cls, expected):
    q = cls(maxsize=3)
    for item in (3, 1, 2):
        q.put_nowait(item)
    assert (q.qsize(), q.full(), q.empty()) == (3, True, False)
    with pytest.raises(queue.Full):
        q.put_nowait(4)
    with pytest.raises(queue.Full):
        q.put(4, timeout=0.01)
    assert [q.get_nowait() for _ in range(3)] == expected
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)
    with pytest.raises(ValueError):
        q.get(timeout=-1)


def test_blocked_get_and_put_wait_cooperatively():
    q = green_queue.Queue(maxsize=1)
    got = []

    def consumer() -> None:
        for _ in range(5):
            got.append(q.get())  # waits: the producer runs meanwhile

    task = greenpatch.spawn(consumer)
    for item in range(5):
        q.put(item)  # waits while full: the consumer runs meanwhile
    task.join(10)
    assert got == [0, 1, 2, 3, 4]


def test_task_done_and_join():
    q = green_queue.Queue()
    processed = []

    def worker() -> None:
        while True:
            item = q.get()
            greenpatch.sleep(0.001)
            processed.append(item)
            q.task_done()

    workers = [greenpatch.spawn(worker) for _ in range(3)]
    for item in range(10):
        q.put(item)
    q.join()
    assert sorted(processed) == list(range(10)) and q.unfinished_tasks == 0
    with pytest.raises(ValueError):
        q.task_done()
    greenpatch.killall(workers)


def test_stdlib_attributes_and_subclass_hooks_still_work():
    class Recording(green_queue.Queue):
        def _put(self, item):
            super()._put(item * 10)

    q = Recording()
    q.put(1)
    with q.mutex:  # the pattern code written against queue.Queue uses
        assert list(q.queue) == [10]
        q.queue.clear()
    assert q.empty()


@pytest.mark.skipif(not HAS_SHUTDOWN, reason="Queue.shutdown is 3.13+")
def test_shutdown_wakes_blocked_getters():
    q = green_queue.Queue()
    errors = []

    def getter() -> None:
        try:
            q.get()
        except queue.ShutDown:  # type: ignore[attr-defined]
            errors.append("shut down")

    tasks = [greenpatch.spawn(getter) for _ in range(2)]
    greenpatch.sleep(0.01)
    q.shutdown()
    greenpatch.joinall(tasks, timeout=10)
    assert errors == ["shut down", "shut down"]


def test_queue_between_a_greenlet_and_a_real_thread():
    q = green_queue.Queue()
    replies = green_queue.Queue()

    def os_thread() -> None:
        replies.put(q.get() * 2)

    real = threading.Thread(target=os_thread)
    real.start()
    q.put(21)
    assert replies.get(timeout=10) == 42
    real.join(10)


def test_simple_queue_fifo_timeouts_and_errors():
    q = green_queue.SimpleQueue()
    assert q.empty() and q.qsize() == 0
    for item in range(3):
        q.put(item)
    q.put_nowait(3)
    assert [q.get() for _ in range(3)] == [0, 1, 2]
    assert q.get_nowait() == 3
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(block=False)
    started = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    assert time.monotonic() - started >= 0.04
    with pytest.raises(ValueError):
        q.get(timeout=-1)


def test_simple_queue_checks_timeout_and_refuses_pickling_as_the_c_class():
    import copy
    import pickle

    q = green_queue.SimpleQueue()
    q.put(1)
    with pytest.raises(ValueError, match="non-negative"):  # checked first, as in C
        q.get(timeout=-1)
    assert q.get(False, timeout=-1) == 1  # non-blocking: the timeout is ignored
    assert type(q).__module__ == queue.SimpleQueue.__module__ == "_queue"
    for dump in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match=r"cannot pickle '_queue\.SimpleQueue' object"):
            dump(q)


def test_simple_queue_getters_wake_in_order_and_a_leaver_passes_its_wakeup_on():
    q = green_queue.SimpleQueue()
    got = []

    def getter(name: str, timeout: float | None) -> None:
        try:
            got.append((name, q.get(timeout=timeout)))
        except queue.Empty:
            got.append((name, "timed out"))

    impatient = greenpatch.spawn(getter, "impatient", 0.01)
    patient = [greenpatch.spawn(getter, f"g{i}", None) for i in range(3)]
    greenpatch.sleep(0.05)  # the impatient one has left the line
    for item in "abc":
        q.put(item)
    greenpatch.joinall([impatient, *patient], timeout=10)
    assert got == [("impatient", "timed out"), ("g0", "a"), ("g1", "b"), ("g2", "c")]


def test_simple_queue_put_is_safe_in_a_weakref_callback():
    # concurrent.futures' executor puts from a weakref callback; put takes no lock.
    q = green_queue.SimpleQueue()

    class Owner:
        pass

    owner = Owner()
    ref = weakref.ref(owner, lambda _ref: q.put("collected"))
    del owner
    assert ref() is None
    assert q.get(timeout=1) == "collected"


def test_simple_queue_put_from_a_real_thread_wakes_a_waiting_greenlet():
    q = green_queue.SimpleQueue()
    go = threading.Event()

    def os_thread() -> None:
        go.wait(10)
        q.put("from a real thread")

    real = threading.Thread(target=os_thread)
    real.start()
    ticks = []
    ticker = greenpatch.spawn(lambda: [ticks.append(greenpatch.sleep(0.005)) for _ in range(5)])
    getter = greenpatch.spawn(q.get)
    greenpatch.sleep(0.05)
    go.set()
    assert getter.get(timeout=10) == "from a real thread"
    ticker.join(10)
    assert len(ticks) == 5  # the hub kept running while the getter waited
    real.join(10)


def test_patched_queue_module_and_thread_pool_executor():
    out = run(
        """
        import greenpatch
        greenpatch.patch_all(warn_late=False)
        import queue, time, threading
        from concurrent.futures import ThreadPoolExecutor, wait
        from greenpatch.patcher.green import queue as green_queue
        assert queue.SimpleQueue is green_queue.SimpleQueue
        assert queue.Queue is green_queue.Queue and queue.Empty is green_queue.Empty

        # The executor binds queue.SimpleQueue when it is made: green workers wait
        # in a green queue, and submit/map/shutdown do not deadlock.
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert type(pool._work_queue) is green_queue.SimpleQueue
            started = time.monotonic()
            futures = [pool.submit(time.sleep, 0.1) for _ in range(16)]
            wait(futures, timeout=10)
            assert all(f.done() for f in futures)
            assert time.monotonic() - started < 1.0   # 16 x 0.1 s on 8 green workers
            assert list(pool.map(lambda x: x * 2, range(20))) == [x * 2 for x in range(20)]
        assert not any(t.is_alive() for t in pool._threads)

        # Left running at exit: the atexit hook stops the workers.
        pool = ThreadPoolExecutor(max_workers=2)
        print(pool.submit(lambda: "ok").result(timeout=10))
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    assert "Traceback" not in out.stderr


def test_patched_without_the_thread_patch_the_queues_still_wait_cooperatively():
    out = run(
        """
        import greenpatch
        greenpatch.patch_all(thread=False, warn_late=False)
        import queue, threading, time
        assert not greenpatch.is_patched("threading")
        q = queue.Queue()
        got = []
        consumer = greenpatch.spawn(lambda: got.append(q.get(timeout=5)))
        greenpatch.sleep(0.01)
        q.put("item")
        consumer.join(5)
        # And real threads (not patched) still block on them as threads do.
        replies = queue.Queue()
        real = threading.Thread(target=lambda: replies.put(q.get(timeout=5) + 1))
        real.start()
        q.put(1)
        print(got, replies.get(timeout=5))
        real.join(5)
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['item'] 2"
