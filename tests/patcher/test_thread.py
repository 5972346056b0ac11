"""Green ``_thread``, used directly (the pytest process itself is never patched)."""

from __future__ import annotations

import _thread
import gc
import re
import sys
import threading
import weakref
from typing import Any

import pytest

import greenpatch
from greenpatch.patcher.green import _thread as green_thread

HAS_HANDLES = sys.version_info >= (3, 13)


def test_implements_only_names_this_python_has_and_defines_them_all():
    for name in green_thread.__implements__:
        assert hasattr(green_thread, name), name
        assert hasattr(_thread, name), f"_thread has no {name} on this Python"
    assert ("start_joinable_thread" in green_thread.__implements__) == HAS_HANDLES
    assert ("_set_sentinel" in green_thread.__implements__) == (not HAS_HANDLES)
    # Kept originals: not swapped.
    for kept in ("stack_size", "exit", "get_native_id", "TIMEOUT_MAX"):
        assert kept not in green_thread.__implements__


def test_get_ident_is_the_os_ident_in_the_main_greenlet():
    assert green_thread.get_ident() == _thread.get_ident()


def test_get_ident_is_stable_per_task_and_unique_among_live_tasks():
    seen: list[tuple[int, int]] = []

    def record() -> None:
        first = green_thread.get_ident()
        greenpatch.sleep(0.01)  # other tasks run meanwhile, on other workers
        seen.append((first, green_thread.get_ident()))

    tasks = [greenpatch.spawn(record) for _ in range(50)]
    greenpatch.joinall(tasks, timeout=10)
    assert len(seen) == 50
    assert all(first == again for first, again in seen)
    assert len({first for first, _ in seen}) == 50
    assert _thread.get_ident() not in {first for first, _ in seen}


def test_tasks_run_one_after_another_on_one_worker_get_their_own_ident():
    # Short tasks spawned together run back to back on the same worker greenlet.
    idents = []
    tasks = [greenpatch.spawn(lambda: idents.append(green_thread.get_ident())) for _ in range(5)]
    greenpatch.joinall(tasks, timeout=10)
    assert sorted(idents) == sorted(id(task) for task in tasks)


def test_start_new_thread_runs_in_a_task_and_returns_its_ident():
    done = greenpatch.Event()
    got: list[Any] = []

    def work(a: int, b: int = 0) -> None:
        got.append((a, b, green_thread.get_ident(), green_thread._count()))
        done.set()

    ident = green_thread.start_new_thread(work, (1,), {"b": 2})
    assert done.wait(10)
    assert got[0][:3] == (1, 2, ident)
    assert got[0][3] >= 1  # counted while running
    greenpatch.sleep(0)
    assert ident not in green_thread._running


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((42, ()), "first arg must be callable"),
        ((print, [1]), "2nd arg must be a tuple"),
        ((print, (), [1]), "optional 3rd arg must be a dictionary"),
    ],
)
def test_start_new_thread_checks_its_arguments_like_the_stdlib(args, message):
    with pytest.raises(TypeError, match=message):
        green_thread.start_new_thread(*args)


def test_system_exit_ends_a_thread_quietly_and_other_errors_are_unraisable(monkeypatch):
    reports: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)
    done = greenpatch.Event()

    def exits() -> None:
        _thread.exit()  # the kept original: raises SystemExit

    def fails() -> None:
        try:
            raise ValueError("boom")
        finally:
            done.set()

    green_thread.start_new_thread(exits, ())
    green_thread.start_new_thread(fails, ())
    assert done.wait(10)
    greenpatch.sleep(0.01)
    assert len(reports) == 1
    assert reports[0].exc_type is ValueError
    if sys.version_info >= (3, 13):
        assert reports[0].err_msg == f"Exception ignored in thread started by {fails!r}"
        assert reports[0].object is None
    else:
        assert reports[0].err_msg == "Exception ignored in thread started by"
        assert reports[0].object is fails


def test_lock_blocks_the_greenlet_not_the_thread():
    lock = green_thread.allocate_lock()
    assert isinstance(lock, green_thread.LockType)
    assert lock.acquire()
    order = []

    def waiter() -> None:
        with lock:
            order.append("waiter got it")

    task = greenpatch.spawn(waiter)
    greenpatch.sleep(0.01)
    assert order == []  # still blocked, and we are still running
    order.append("releasing")
    lock.release()
    task.join(10)
    assert order == ["releasing", "waiter got it"]


def test_lock_checks_and_repr_match_the_stdlib():
    lock = green_thread.allocate_lock()
    assert re.fullmatch(r"<unlocked .* object (.*)?at .*>", repr(lock))
    with pytest.raises(RuntimeError):
        lock.release()
    with pytest.raises(ValueError):
        lock.acquire(False, 1)
    with pytest.raises(ValueError):
        lock.acquire(True, -5)
    with pytest.raises(OverflowError):
        lock.acquire(True, green_thread.TIMEOUT_MAX * 2)
    assert lock.acquire(timeout=0.01)
    assert repr(lock).startswith("<locked")
    assert not lock.acquire(timeout=0.01)
    assert not lock.acquire(False)
    lock.release_lock()
    assert not lock.locked_lock()


def test_lock_released_with_a_waiter_queued_reads_as_not_held():
    # threading asserts `not lock.locked()` right after releasing a thread's
    # sentinel that other joiners wait on.
    lock = green_thread.allocate_lock()
    lock.acquire()
    task = greenpatch.spawn(lock.acquire)
    greenpatch.sleep(0.01)
    lock.release()
    assert not lock.locked()
    task.join(10)
    assert lock.locked()


def test_rlock_is_owned_by_the_task():
    rlock = green_thread.RLock()
    events = []

    def holder() -> None:
        with rlock, rlock:  # re-entrant within one task
            events.append("held")
            greenpatch.sleep(0.05)
        events.append("released")

    def intruder() -> None:
        with pytest.raises(RuntimeError):
            rlock.release()  # not the owner
        assert not rlock.acquire(False)
        with rlock:
            events.append("intruder got it")

    tasks = [greenpatch.spawn(holder), greenpatch.spawn(intruder)]
    greenpatch.joinall(tasks, timeout=10, raise_error=True)
    assert events == ["held", "released", "intruder got it"]
    assert re.fullmatch(r"<unlocked .* object .*owner=0 count=0 at .*>", repr(rlock))


def test_local_is_per_task_even_on_a_reused_worker():
    local = green_thread._local()
    local.value = "main"
    seen = []

    def first() -> None:
        assert not hasattr(local, "value")
        local.value = "first"

    def second() -> None:
        seen.append(getattr(local, "value", None))  # same worker, new task: nothing

    greenpatch.spawn(first).join(10)
    greenpatch.spawn(second).join(10)
    assert seen == [None]
    assert local.value == "main"


def test_local_data_is_dropped_when_the_task_ends():
    local = green_thread._local()

    class Payload:
        pass

    refs = []

    def work() -> None:
        payload = Payload()
        refs.append(weakref.ref(payload))
        local.payload = payload

    greenpatch.spawn(work).join(10)
    greenpatch.sleep(0.01)  # links run in the hub, after the joiner was woken
    gc.collect()
    assert refs[0]() is None
    assert len(object.__getattribute__(local, "_greenpatch_local_impl").dicts) == 1  # main's


def test_local_subclass_init_runs_per_task_and_descriptors_work():
    class Counter(green_thread._local):
        created = 0

        def __init__(self, start: int) -> None:
            Counter.created += 1
            self.count = start

        @property
        def doubled(self) -> int:
            return self.count * 2

    counter = Counter(5)
    counter.count += 1
    values = []

    def use() -> None:
        values.append((counter.count, counter.doubled))
        counter.count += 10

    greenpatch.joinall([greenpatch.spawn(use) for _ in range(2)], timeout=10)
    assert values == [(5, 10), (5, 10)]
    assert (counter.count, Counter.created) == (6, 3)
    assert counter.__dict__ == {"count": 6}
    with pytest.raises(AttributeError):
        counter.__dict__ = {}
    del counter.count
    with pytest.raises(AttributeError):
        counter.count  # noqa: B018
    with pytest.raises(TypeError, match="Initialization arguments are not supported"):
        green_thread._local(1)


@pytest.mark.skipif(HAS_HANDLES, reason="3.13 uses thread handles instead")
def test_sentinel_is_released_when_the_task_ends():
    got = []

    def thread() -> None:
        lock = green_thread._set_sentinel()
        lock.acquire()
        got.append(lock)
        greenpatch.sleep(0.02)

    task = greenpatch.spawn(thread)
    greenpatch.sleep(0.01)
    assert got[0].locked()
    assert got[0].acquire(timeout=5)  # waits until the task ended
    assert task.dead


@pytest.mark.skipif(not HAS_HANDLES, reason="thread handles are 3.13+")
def test_joinable_thread_handle():
    handle = green_thread.start_joinable_thread(lambda: greenpatch.sleep(0.02), daemon=False)
    assert isinstance(handle, green_thread._ThreadHandle)
    assert handle.ident is not None and not handle.is_done()
    assert handle in green_thread._non_daemon_handles
    handle.join(0.001)
    assert not handle.is_done()
    handle.join()
    assert handle.is_done()
    assert handle not in green_thread._non_daemon_handles
    with pytest.raises(RuntimeError, match="thread already started"):
        green_thread.start_joinable_thread(print, handle=handle)
    with pytest.raises(RuntimeError, match="not started"):
        green_thread._ThreadHandle().join()

    def join_self() -> None:
        own = green_thread._make_thread_handle(green_thread.get_ident())
        with pytest.raises(RuntimeError, match="Cannot join current thread"):
            own.join()

    greenpatch.spawn(join_self).get(timeout=10)


def test_real_threads_can_use_green_locks():
    # A plain OS thread blocks on a green lock (on a hub of its own) and a
    # greenlet is woken by that thread's release.
    lock = green_thread.allocate_lock()
    lock.acquire()
    released = threading.Event()

    def os_thread() -> None:
        with lock:
            pass
        released.set()

    real = threading.Thread(target=os_thread)
    real.start()
    greenpatch.sleep(0.02)
    lock.release()
    real.join(10)
    assert released.is_set()
