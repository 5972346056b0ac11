"""ThreadPool and ThreadPoolExecutor: blocking calls on OS threads, greenlets keep running."""

from __future__ import annotations

import _thread
import concurrent.futures
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, Callable

import pytest

import greenpatch
from greenpatch import get_hub, sleep, spawn
from greenpatch.hub.executor import ThreadPoolExecutor
from greenpatch.hub.threadpool import ThreadPool, get_threadpool

WAIT = 30  # generous bound for anything that should happen promptly


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
    """Let the hub run until ``predicate()`` holds; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        sleep(0.01)
    return True


def ticks_during(call: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``call()`` while a ticker greenlet counts 10 ms sleeps; return (value, ticks)."""
    ticks = []
    stop = []

    def ticker():
        while not stop:
            ticks.append(1)
            sleep(0.01)

    glet = spawn(ticker)
    sleep(0)  # let the ticker start
    before = len(ticks)
    try:
        value = call()
    finally:
        stop.append(1)
        glet.join(WAIT)
    return value, len(ticks) - before


@pytest.fixture
def pool():
    pool = ThreadPool(maxsize=4)
    yield pool
    pool.kill()


def test_results_arrive_while_other_greenlets_keep_running(pool):
    def blocking():
        time.sleep(0.5)  # a real blocking call, in the worker thread
        return "done"

    value, ticks = ticks_during(lambda: pool.spawn(blocking).get(timeout=WAIT))
    assert value == "done"
    assert ticks >= 10  # 50 if the loop never stalled


def test_worker_exception_propagates_to_the_waiting_greenlet(pool):
    def fail():
        raise ValueError("from the worker")

    with pytest.raises(ValueError, match="from the worker"):
        pool.spawn(fail).get(timeout=WAIT)
    result = pool.spawn(fail)
    assert result.wait(WAIT) is None
    assert not result.successful()
    assert isinstance(result.exception, ValueError)


def test_apply_returns_the_value_and_passes_arguments(pool):
    assert pool.apply(divmod, (17, 5)) == (3, 2)
    assert pool.apply(dict, (), {"a": 1}) == {"a": 1}
    with pytest.raises(ZeroDivisionError):
        pool.apply(divmod, (1, 0))


def test_never_more_than_maxsize_threads_run_at_once():
    pool = ThreadPool(maxsize=3)
    lock = threading.Lock()
    state = {"running": 0, "max": 0, "size": 0}
    all_busy = threading.Event()

    def task():
        with lock:
            state["running"] += 1
            state["max"] = max(state["max"], state["running"])
            state["size"] = max(state["size"], pool.size)
            if state["running"] == 3:
                all_busy.set()
        # Hold the thread until three run together, so a fourth would show.
        all_busy.wait(WAIT)
        with lock:
            state["running"] -= 1

    try:
        results = [pool.spawn(task) for _ in range(12)]
        assert pool.size == 3
        for result in results:
            result.get(timeout=WAIT)
    finally:
        pool.kill()
    assert state["max"] == 3
    assert state["size"] == 3


def test_threads_start_lazily(pool):
    assert pool.size == 0
    pool.apply(int)
    assert pool.size == 1


def test_join_waits_for_every_submitted_task(pool):
    finished = []

    def task(i):
        time.sleep(0.02)
        finished.append(i)
        return i

    results = [pool.spawn(task, i) for i in range(8)]
    assert pool.join(timeout=WAIT) is True
    assert sorted(finished) == list(range(8))
    # join returns after the results were delivered, not merely computed.
    assert all(result.ready() for result in results)


def test_join_returns_false_on_timeout(pool):
    release = threading.Event()
    result = pool.spawn(release.wait, WAIT)
    assert pool.join(timeout=0.05) is False
    release.set()
    assert pool.join(timeout=WAIT) is True
    assert result.get() is True


@pytest.mark.timeout(20)  # leaked refs would hang wait()
def test_pending_work_keeps_the_loop_alive(pool):
    # wait() runs the hub until nothing can happen any more; the worker thread is
    # invisible to libev, so only the pool's ref keeps this from ending at once.
    result = pool.spawn(time.sleep, 0.2)
    assert greenpatch.wait() is True
    assert result.ready()


def test_waiting_for_a_result_never_raises_loop_exit():
    # In a fresh interpreter, so that nothing left by other tests keeps the loop
    # alive: the main greenlet, just woken by a timer, waits on a worker thread.
    code = textwrap.dedent(
        """
        import time
        import greenpatch
        from greenpatch.hub.threadpool import ThreadPool

        pool = ThreadPool(2)
        for _ in range(3):
            greenpatch.sleep(0.01)
            assert pool.apply(time.sleep, (0.05,)) is None
            assert pool.spawn(sum, (1, 2)).get() == 3
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_shutdown_finishes_queued_work_then_threads_exit():
    pool = ThreadPool(maxsize=2)
    results = [pool.spawn(time.sleep, 0.02) for _ in range(5)]
    pool.shutdown(wait=True)
    assert pool.closed
    assert pool.size == 0
    assert all(result.successful() for result in results)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.spawn(int)


def test_kill_cancels_queued_tasks_but_running_ones_finish():
    pool = ThreadPool(maxsize=1)
    started, release = threading.Event(), threading.Event()
    running = pool.spawn(lambda: started.set() or release.wait(WAIT))
    queued = pool.spawn(int)
    assert started.wait(WAIT)  # the first task holds the only thread now
    pool.kill()
    with pytest.raises(concurrent.futures.CancelledError):
        queued.get(timeout=WAIT)
    release.set()
    assert running.get(timeout=WAIT) is True
    pool.shutdown(wait=True)
    assert pool.size == 0


def test_idle_threads_exit_after_the_idle_timeout():
    pool = ThreadPool(maxsize=2, idle_timeout=0.05)
    native_id = pool.apply(threading.get_native_id)
    assert pool.size == 1
    assert wait_for(lambda: pool.size == 0)
    task_dir = f"/proc/self/task/{native_id}"
    if os.path.isdir("/proc/self/task"):
        # The OS thread itself is gone, not merely parked.
        assert wait_for(lambda: not os.path.exists(task_dir))
    # The pool stays usable: a new thread starts for new work.
    assert pool.apply(int, ("5",)) == 5


def test_raising_maxsize_starts_threads_for_queued_work():
    pool = ThreadPool(maxsize=1)
    release = threading.Event()
    try:
        blocked = pool.spawn(release.wait, WAIT)
        queued = pool.spawn(int, "7")
        assert pool.join(timeout=0.05) is False  # queued waits behind the blocked one
        pool.maxsize = 2
        assert queued.get(timeout=WAIT) == 7
        assert not blocked.ready()
    finally:
        release.set()
        pool.kill()


def test_lowering_maxsize_retires_extra_threads():
    pool = ThreadPool(maxsize=3, idle_timeout=WAIT)
    release = threading.Event()
    try:
        results = [pool.spawn(release.wait, WAIT) for _ in range(3)]
        release.set()
        for result in results:
            result.get(timeout=WAIT)
        assert pool.size == 3
        pool.maxsize = 1
        assert wait_for(lambda: pool.size == 1)
        assert pool.apply(int, ("3",)) == 3
    finally:
        pool.kill()


def test_maxsize_must_be_positive():
    with pytest.raises(ValueError):
        ThreadPool(maxsize=0)
    pool = ThreadPool(maxsize=1)
    with pytest.raises(ValueError):
        pool.maxsize = 0


def test_spawn_from_another_thread_is_refused_but_apply_runs_inline(pool):
    outcome = {}

    def in_thread():
        try:
            pool.spawn(int)
        except RuntimeError as exc:
            outcome["error"] = str(exc)
        outcome["apply"] = pool.apply(threading.get_ident)
        outcome["ident"] = threading.get_ident()

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(WAIT)
    assert "ThreadPoolExecutor" in outcome["error"]
    assert outcome["apply"] == outcome["ident"]


def test_apply_inside_a_worker_does_not_deadlock():
    pool = ThreadPool(maxsize=1)
    try:
        assert pool.apply(lambda: pool.apply(lambda: 7)) == 7
    finally:
        pool.kill()


def test_get_threadpool_is_one_per_hub_and_replaced_after_shutdown():
    pool = get_threadpool()
    assert get_threadpool() is pool
    assert pool.hub is get_hub()
    hooks = len(get_hub().destroy_hooks)
    pool.shutdown()
    fresh = get_threadpool()
    assert fresh is not pool
    assert fresh.apply(int, ("1",)) == 1
    assert len(get_hub().destroy_hooks) == hooks  # one hook for every default pool


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads, 3.12+
def test_pool_keeps_working_in_a_forked_child():
    pool = ThreadPool(maxsize=2, idle_timeout=WAIT)
    assert pool.apply(int, ("1",)) == 1  # leaves an idle thread behind
    release = threading.Event()
    stuck = pool.spawn(release.wait, WAIT)  # running in a thread at fork time
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            code = 2
            assert pool.size == 0
            code = 3
            try:
                stuck.get(timeout=WAIT)
            except RuntimeError:
                pass
            else:
                raise AssertionError("the lost task should fail")
            code = 4
            assert pool.apply(int, ("42",)) == 42
            code = 5
            assert get_threadpool().apply(sum, ([1, 2],)) == 3
            code = 0
        finally:
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert not stuck.ready()  # the parent's task is untouched by the child
    finally:
        release.set()
        assert stuck.get(timeout=WAIT) is True
        pool.kill()


def test_context_manager_shuts_the_pool_down():
    with ThreadPool(maxsize=2) as pool:
        assert pool.apply(len, ("abc",)) == 3
    assert pool.closed
    assert pool.size == 0


# -- the concurrent.futures adapter -----------------------------------------------


@pytest.fixture
def executor():
    executor = ThreadPoolExecutor(max_workers=4)
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)


def test_executor_submit_returns_a_concurrent_future(executor):
    future = executor.submit(pow, 2, 10)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=WAIT) == 1024
    failing = executor.submit(divmod, 1, 0)
    assert isinstance(failing.exception(timeout=WAIT), ZeroDivisionError)
    with pytest.raises(ZeroDivisionError):
        failing.result()


def test_executor_futures_work_with_concurrent_futures_wait(executor):
    futures = [executor.submit(pow, i, 2) for i in range(5)]
    done, not_done = concurrent.futures.wait(futures, timeout=WAIT)
    assert not not_done
    assert sorted(f.result() for f in done) == [0, 1, 4, 9, 16]
    assert list(executor.map(abs, [-1, -2, 3])) == [1, 2, 3]


def test_future_result_in_a_greenlet_lets_others_run(executor):
    def blocking():
        time.sleep(0.5)
        return "slow"

    future = executor.submit(blocking)
    waiter = spawn(future.result)
    value, ticks = ticks_during(lambda: waiter.get(timeout=WAIT))
    assert value == "slow"
    assert ticks >= 10


def test_future_result_timeout_in_a_greenlet(executor):
    release = threading.Event()
    future = executor.submit(release.wait, WAIT)
    with pytest.raises(concurrent.futures.TimeoutError):
        future.result(timeout=0.05)
    release.set()
    assert future.result(timeout=WAIT) is True


def test_future_cancelled_while_queued_wakes_greenlet_waiters():
    executor = ThreadPoolExecutor(max_workers=1)
    release = threading.Event()
    try:
        executor.submit(release.wait, WAIT)
        queued = executor.submit(int)
        waiter = spawn(queued.exception)
        sleep(0.01)  # the waiter is parked now (or will see the cancel at once)
        assert queued.cancel()
        with pytest.raises(concurrent.futures.CancelledError):
            waiter.get(timeout=WAIT)
    finally:
        release.set()
        executor.shutdown(wait=True)


def test_executor_submit_and_result_from_a_plain_thread(executor):
    outcome = {}

    def in_thread():
        outcome["value"] = executor.submit(pow, 3, 3).result(timeout=WAIT)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(WAIT)
    assert outcome == {"value": 27}


def test_executor_shutdown_refuses_new_work_and_can_cancel_queued():
    executor = ThreadPoolExecutor(max_workers=1)
    started, release = threading.Event(), threading.Event()
    running = executor.submit(lambda: started.set() or release.wait(WAIT))
    queued = executor.submit(int)
    assert started.wait(WAIT)
    executor.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(int)
    release.set()
    assert running.result(timeout=WAIT) is True
    executor.shutdown(wait=True)


def test_executor_as_context_manager_waits_for_its_work():
    with ThreadPoolExecutor(max_workers=2) as executor:
        futures = [executor.submit(time.sleep, 0.02) for _ in range(4)]
    assert all(future.done() for future in futures)
    assert executor.max_workers == 2


def test_a_real_thread_gets_the_gil_while_greenlets_switch_without_pause():
    # Greenlets that never stop switching keep the loop polling without
    # blocking; each poll released the GIL for a microsecond, which never let a
    # waiting OS thread's 5 ms switch interval run out: 200 round trips with a
    # real thread took minutes.  The loop's GIL hand-off makes them prompt; the
    # bound here is only a hang guard, 100 times what they take.
    start_thread = _thread.start_new_thread
    ping, pong = _thread.allocate_lock(), _thread.allocate_lock()
    ping.acquire()
    pong.acquire()
    done = []

    def thread_side():
        for _ in range(200):
            if not ping.acquire(True, 30):
                done.append("stalled")
                return
            pong.release()
        done.append("ok")

    stop = []

    def spinner():
        while not stop:
            greenpatch.sleep(0)

    spinners = [greenpatch.spawn(spinner) for _ in range(2)]
    start_thread(thread_side, ())
    try:
        with greenpatch.Timeout(60, AssertionError("the thread starved")):
            for _ in range(200):
                ping.release()
                while not pong.acquire(False):
                    greenpatch.sleep(0)
            while not done:
                greenpatch.sleep(0)
    finally:
        stop.append(True)
        greenpatch.joinall(spinners, timeout=10)
    assert done == ["ok"]
