"""Semaphore, BoundedSemaphore, Lock, RLock: fairness, timeouts, lost wake-ups, threads."""

from __future__ import annotations

import threading
import time

import pytest
from greenlet import getcurrent

import greenpatch
from greenpatch import BlockingSwitchOutError, Timeout, get_hub, sleep, spawn
from greenpatch.hub.locks import BoundedSemaphore, Lock, RLock, Semaphore


class Boom(Exception):
    pass


def _queued(lock, count: int = 1) -> None:
    """Wait (cooperatively, with a deadline) until ``count`` waiters are parked on ``lock``."""
    deadline = time.monotonic() + 10
    while len(lock._queue) < count:
        assert time.monotonic() < deadline, "waiters never parked"
        sleep(0.001)


def _run_in_thread(target, *args):
    """Call ``target(*args)`` in a real OS thread once the hub runs, i.e. after we park."""
    go = threading.Event()

    def main():
        if go.wait(10):
            target(*args)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    get_hub().loop.run_callback(go.set)
    return thread


# -- Semaphore ----------------------------------------------------------------------


def test_semaphore_counts_acquires_and_releases():
    sem = Semaphore(2)
    assert sem.counter == 2 and not sem.locked() and sem.ready()
    assert sem.acquire() and sem.acquire()
    assert sem.counter == 0 and sem.locked()
    assert sem.acquire(blocking=False) is False
    sem.release(2)
    assert sem.counter == 2
    with pytest.raises(ValueError):
        Semaphore(-1)
    with pytest.raises(ValueError):
        sem.release(0)
    with pytest.raises(ValueError):
        sem.acquire(blocking=False, timeout=1)


def test_semaphore_acquire_times_out_and_leaves_the_queue():
    sem = Semaphore(0)
    start = time.monotonic()
    assert sem.acquire(timeout=0.02) is False
    assert time.monotonic() - start >= 0.015
    assert sem.acquire(timeout=0) is False
    assert not sem._queue
    sem.release()
    assert sem.counter == 1  # the timed-out wait did not take the slot


def test_semaphore_as_a_context_manager_limits_concurrency():
    sem = Semaphore(2)
    running, peak = [], []

    def worker():
        with sem:
            running.append(1)
            peak.append(len(running))
            sleep(0.001)
            running.pop()

    greenpatch.joinall([spawn(worker) for _ in range(6)], timeout=10)
    assert max(peak) == 2 and sem.counter == 2


def test_waiters_get_the_semaphore_in_fifo_order():
    lock = Lock()
    lock.acquire()
    order = []

    def worker(i):
        with lock:
            order.append(i)

    glets = [spawn(worker, i) for i in range(5)]
    _queued(lock, 5)
    lock.release()
    greenpatch.joinall(glets, timeout=10)
    assert order == list(range(5))


def test_a_released_slot_is_kept_for_the_woken_waiter():
    sem = Semaphore(0)
    glet = spawn(sem.acquire)
    _queued(sem)
    sem.release()
    # Promised to the queued greenlet, which has not run yet: no barging.
    assert sem.acquire(blocking=False) is False
    assert sem.locked()
    assert glet.get(timeout=10) is True
    assert sem.counter == 0


def test_killed_waiter_does_not_take_a_slot():
    sem = Semaphore(0)
    victim = spawn(sem.acquire)
    _queued(sem)
    victim.kill(Boom, timeout=10)
    assert not sem._queue
    sem.release()
    assert sem.counter == 1


def test_waiter_killed_after_being_woken_passes_the_slot_on():
    sem = Semaphore(0)
    hub = get_hub()
    victim = spawn(sem.acquire)
    heir = spawn(sem.acquire)
    _queued(sem, 2)
    hub.loop.run_callback(victim.throw, Boom())  # runs before the resume release() queues
    sem.release()
    assert heir.get(timeout=10) is True
    assert isinstance(victim.exception, Boom)
    assert sem.counter == 0 and not sem._queue


def test_waiter_killed_after_being_woken_gets_no_stale_resume_later():
    sem = Semaphore(0)
    hub = get_hub()
    parked_again = threading.Event()
    seen = []

    def waiter():
        try:
            sem.acquire()
        except Boom:
            seen.append("boom")
        seen.append(getcurrent())
        parked_again.set()
        # Only the explicit switch below may resume this greenlet.
        seen.append(hub.switch())

    glet = spawn(waiter)
    _queued(sem)
    hub.loop.run_callback(glet.throw, Boom())
    sem.release()
    deadline = time.monotonic() + 10
    while not parked_again.is_set() and time.monotonic() < deadline:
        sleep(0.001)
    for _ in range(3):
        sleep(0)  # the stale resume, if any, would run here
    assert seen[0] == "boom" and len(seen) == 2
    assert sem.counter == 1  # the slot went back
    hub.loop.run_callback(seen[1].switch, "explicit")
    glet.join(10)
    assert seen[2] == "explicit"


def test_waiter_whose_timer_fires_after_it_was_woken_keeps_the_slot():
    # Both timers are due in the same loop iteration; the release (earlier
    # deadline) runs first, so the waiter is woken, then its own timer fires.
    sem = Semaphore(0)
    get_hub().loop.call_later(0.02, sem.release)
    glet = spawn(sem.acquire, timeout=0.02)
    sleep(0)  # the waiter parks
    time.sleep(0.05)  # hold the loop until both deadlines passed
    assert glet.get(timeout=10) is True
    assert sem.counter == 0 and not sem._queue


def test_greenpatch_timeout_interrupts_acquire():
    lock = Lock()
    lock.acquire()
    with pytest.raises(Timeout):
        with Timeout(0.01):
            lock.acquire()
    assert not lock._queue
    lock.release()
    assert not lock.locked()


def test_semaphore_wait_does_not_acquire():
    sem = Semaphore(0)
    assert sem.wait(timeout=0.01) == 0
    greenpatch.spawn_later(0.01, sem.release)
    assert sem.wait(timeout=10) == 1
    assert sem.counter == 1


def test_semaphore_rawlink_and_iwait():
    sem = Semaphore(0)
    calls = []
    sem.rawlink(calls.append)
    sem.release()
    sleep(0)
    assert calls == [sem]
    sem.unlink(calls.append)
    other = Semaphore(0)
    spawn(other.release)
    assert list(greenpatch.iwait([other], timeout=10)) == [other]


def test_blocking_acquire_in_a_loop_callback_fails_and_leaves_no_waiter():
    lock = Lock()
    lock.acquire()
    errors = []

    def callback():
        try:
            lock.acquire()
        except BlockingSwitchOutError as exc:
            errors.append(exc)

    get_hub().loop.run_callback(callback)
    sleep(0)
    assert len(errors) == 1 and not lock._queue
    lock.release()


# -- BoundedSemaphore and Lock --------------------------------------------------------


def test_bounded_semaphore_refuses_to_release_past_its_initial_value():
    sem = BoundedSemaphore(2)
    with pytest.raises(ValueError, match="too many"):
        sem.release()
    sem.acquire()
    sem.release()
    with pytest.raises(ValueError):
        sem.release()
    assert sem.counter == 2


def test_lock_acquire_release_and_errors_match_threading():
    lock = Lock()
    assert not lock.locked()
    with lock:
        assert lock.locked()
        assert lock.acquire(False) is False
        assert lock.acquire(timeout=0.01) is False
    assert not lock.locked()
    with pytest.raises(RuntimeError, match="release unlocked lock"):
        lock.release()
    with pytest.raises(ValueError):
        lock.acquire(False, 1)
    with pytest.raises(ValueError):
        lock.acquire(True, -2)
    assert lock.acquire(True, -1) is True
    lock.release()


def test_lock_can_be_released_by_another_greenlet():
    lock = Lock()
    lock.acquire()
    spawn(lock.release)
    assert lock.acquire(timeout=10) is True


# -- OS threads ------------------------------------------------------------------------


def test_lock_released_from_another_thread_wakes_the_main_greenlet():
    lock = Lock()
    lock.acquire()
    thread = _run_in_thread(lock.release)
    # No timeout: a wait that did not keep the loop alive would raise LoopExit.
    assert lock.acquire() is True
    thread.join(10)
    assert lock.locked()
    lock.release()


def test_semaphore_acquired_in_two_greenlets_and_released_from_a_thread():
    sem = Semaphore(0)
    order = []
    thread_go = threading.Event()

    def releaser():
        thread_go.wait(10)
        sem.release()
        sem.release()

    thread = threading.Thread(target=releaser, daemon=True)
    thread.start()
    glets = [spawn(lambda i=i: order.append((i, sem.acquire()))) for i in range(2)]
    _queued(sem, 2)
    thread_go.set()
    greenpatch.joinall(glets, raise_error=True)
    thread.join(10)
    assert order == [(0, True), (1, True)]
    assert sem.counter == 0


def test_plain_thread_blocks_on_a_semaphore_until_a_greenlet_releases_it():
    sem = Semaphore(0)
    results = []

    def in_thread():
        results.append(sem.acquire(timeout=10))
        get_hub().destroy()

    thread = threading.Thread(target=in_thread)
    thread.start()
    _queued(sem)
    spawn(sem.release).join(10)
    thread.join(10)
    assert results == [True]


def test_many_threads_and_greenlets_share_a_lock_without_losing_updates():
    lock = Lock()
    total = [0]

    def bump(n):
        for _ in range(n):
            with lock:
                value = total[0]
                sleep(0)  # in a greenlet: yield while holding the lock
                total[0] = value + 1

    def in_thread():
        bump(50)
        get_hub().destroy()

    threads = [threading.Thread(target=in_thread) for _ in range(3)]
    for thread in threads:
        thread.start()
    greenpatch.joinall([spawn(bump, 50) for _ in range(3)], raise_error=True)
    for thread in threads:
        thread.join(30)
    assert total[0] == 300


# -- RLock -------------------------------------------------------------------------------


def test_rlock_is_reentrant_for_its_owner():
    rlock = RLock()
    with rlock:
        with rlock:
            assert rlock._is_owned() and rlock._recursion_count() == 2
        assert rlock.locked()
    assert not rlock.locked() and not rlock._is_owned()


def test_rlock_blocks_other_greenlets_until_fully_released():
    rlock = RLock()
    got = []
    rlock.acquire()
    rlock.acquire()
    glet = spawn(lambda: got.append(rlock.acquire(timeout=10)))
    sleep(0)
    rlock.release()
    sleep(0)
    assert got == []
    rlock.release()
    glet.join(10)
    assert got == [True]
    # The finished task still owns it (as a thread that exits holding an RLock).
    assert spawn(rlock.acquire, timeout=0.01).get(timeout=10) is False


def test_rlock_release_by_a_non_owner_raises():
    rlock = RLock()
    with pytest.raises(RuntimeError, match="cannot release un-acquired lock"):
        rlock.release()
    rlock.acquire()
    glet = spawn(rlock.release)
    with pytest.raises(RuntimeError, match="cannot release un-acquired lock"):
        glet.get(timeout=10)
    rlock.release()


def test_rlock_held_by_a_thread_blocks_greenlets_until_the_thread_releases_it():
    rlock = RLock()
    held, go = threading.Event(), threading.Event()

    def in_thread():
        with rlock:
            held.set()
            go.wait(10)

    thread = threading.Thread(target=in_thread, daemon=True)
    thread.start()
    assert held.wait(10)
    with pytest.raises(RuntimeError):
        rlock.release()  # owned by the thread, not by us
    get_hub().loop.run_callback(go.set)
    assert rlock.acquire() is True
    assert rlock._is_owned()
    rlock.release()
    thread.join(10)


def test_rlock_owner_is_the_greenlet_task():
    rlock = RLock()
    owners = []

    def task():
        with rlock:
            owners.append(rlock._owner)

    glet = spawn(task)
    glet.join(10)
    assert owners == [glet]


def test_threading_condition_over_rlock_excludes_greenlets():
    cond = threading.Condition(RLock())
    inside = []

    def worker(i):
        with cond:
            inside.append(("in", i))
            sleep(0)
            inside.append(("out", i))

    greenpatch.joinall([spawn(worker, i) for i in range(3)], timeout=10)
    assert inside == [(step, i) for i in range(3) for step in ("in", "out")]
    with pytest.raises(RuntimeError):
        cond.notify()  # not owned


def test_threading_condition_over_rlock_wait_and_notify_with_green_waiter_locks(monkeypatch):
    # What patched threading does: Condition.wait parks on a lock from
    # threading._allocate_lock, made green here.
    monkeypatch.setattr(threading, "_allocate_lock", Lock)
    cond = threading.Condition(RLock())
    items = []

    def consumer():
        with cond:
            with cond:  # re-entrant: wait must release both levels
                assert cond.wait_for(lambda: items, timeout=10)
                return items.pop(0)

    glet = spawn(consumer)
    sleep(0)
    with cond:
        items.append("x")
        cond.notify()
    assert glet.get(timeout=10) == "x"
    with cond:
        assert cond.wait(timeout=0.01) is False
