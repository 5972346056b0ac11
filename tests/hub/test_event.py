"""Event and AsyncResult: waiting, timeouts, stale wake-ups, threads, links, iwait."""

from __future__ import annotations

import _thread
import concurrent.futures
import threading
import time

import pytest
from greenlet import getcurrent

import greenpatch
import greenpatch.hub.event
from greenpatch import LoopExit, Timeout, get_hub, sleep, spawn
from greenpatch.hub.event import AsyncResult, Event


class Boom(Exception):
    pass


def _run_in_thread(target, *args):
    """Call ``target(*args)`` in a real OS thread once the hub runs, i.e. after we park.

    The thread exists before the caller starts waiting, as in real code (a wait
    keeps its loop alive only if another thread exists when it begins).
    """
    go = threading.Event()

    def main():
        if go.wait(10):
            target(*args)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    get_hub().loop.run_callback(go.set)
    return thread


# -- Event ----------------------------------------------------------------------


def test_wait_returns_at_once_when_set():
    event = Event()
    event.set()
    assert event.wait() is True
    assert event.wait(timeout=0) is True
    assert event.is_set() and event.isSet() and event.ready()


def test_wait_blocks_until_set_and_wakes_waiters_in_fifo_order():
    event = Event()
    woken = []
    glets = [spawn(lambda i=i: woken.append((i, event.wait()))) for i in range(5)]
    sleep(0)
    assert woken == []
    event.set()
    greenpatch.joinall(glets, timeout=10)
    assert woken == [(i, True) for i in range(5)]


def test_wait_times_out_and_returns_false():
    event = Event()
    start = time.monotonic()
    assert event.wait(timeout=0.02) is False
    assert time.monotonic() - start >= 0.015
    assert event.wait(timeout=0) is False
    assert not event._waiters  # the timed-out wait left nothing behind


def test_clear_makes_wait_block_again():
    event = Event()
    event.set()
    event.clear()
    assert not event.is_set()
    assert event.wait(timeout=0.01) is False


def test_wait_is_true_when_set_and_cleared_before_the_waiter_runs():
    event = Event()
    glet = spawn(event.wait)
    sleep(0)
    event.set()
    event.clear()
    assert glet.get(timeout=10) is True


def test_ping_pong_between_two_greenlets():
    ping, pong = Event(), Event()
    rounds = []

    def player(mine, other, name):
        for _ in range(100):
            assert mine.wait(timeout=10)
            mine.clear()
            rounds.append(name)
            other.set()

    glets = [spawn(player, ping, pong, "ping"), spawn(player, pong, ping, "pong")]
    ping.set()
    greenpatch.joinall(glets, timeout=10, raise_error=True)
    assert rounds == ["ping", "pong"] * 100


def test_killed_waiter_leaves_and_others_are_still_woken():
    event = Event()
    victim = spawn(event.wait)
    survivor = spawn(event.wait)
    sleep(0)
    victim.kill(Boom, timeout=10)
    assert isinstance(victim.exception, Boom)
    assert len(event._waiters) == 1
    event.set()
    assert survivor.get(timeout=10) is True


def test_a_waiter_killed_after_set_gets_no_stale_resume_later():
    event = Event()
    hub = get_hub()
    parked_again = Event()
    seen = []

    def waiter():
        try:
            event.wait()
        except Boom:
            seen.append("boom")
        raw = getcurrent()
        seen.append(raw)
        parked_again.set()
        # Park with no wake-up registered anywhere: only our explicit switch below
        # may resume this greenlet; the resume that set() queued must not.
        seen.append(hub.switch())

    glet = spawn(waiter)
    sleep(0)
    hub.loop.run_callback(glet.throw, Boom())  # queued before set()'s resume
    event.set()
    assert parked_again.wait(timeout=10)
    for _ in range(3):
        sleep(0)  # let the stale resume (if any) run
    assert seen[0] == "boom" and len(seen) == 2
    hub.loop.run_callback(seen[1].switch, "explicit")
    glet.join(10)
    assert seen[2] == "explicit"


def test_wait_succeeds_when_its_timer_fires_after_set():
    # Both timers are due in the same loop iteration; set's comes first (earlier
    # deadline), so the waiter is notified and then its own timer fires.
    event = Event()
    get_hub().loop.call_later(0.02, event.set)
    glet = spawn(event.wait, 0.02)
    sleep(0)  # the waiter parks
    time.sleep(0.05)  # hold the loop until both deadlines passed
    assert glet.get(timeout=10) is True


def test_greenpatch_timeout_interrupts_wait():
    event = Event()
    with pytest.raises(Timeout):
        with Timeout(0.01):
            event.wait()
    assert not event._waiters


def test_wait_with_nothing_to_wake_raises_loop_exit():
    if _thread._count():  # e.g. an idle thread pool worker left by another test
        pytest.skip("another OS thread is alive, so the wait keeps the loop alive")
    with pytest.raises(LoopExit):
        Event().wait()


def test_keep_alive_lapses_once_the_other_threads_are_gone(monkeypatch):
    if _thread._count():
        pytest.skip("another OS thread is alive, so the wait keeps the loop alive")
    monkeypatch.setattr(greenpatch.hub.event, "KEEP_ALIVE_CHECK_SECONDS", 0.01)
    leave = threading.Event()
    thread = threading.Thread(target=leave.wait, args=(10,), daemon=True)
    thread.start()
    # The thread could set the event, so the wait keeps the loop alive; once the
    # thread has gone, the deadlock is reported after all.
    get_hub().loop.call_later(0.02, leave.set)
    with pytest.raises(LoopExit):
        Event().wait()
    thread.join(10)


# -- Event and OS threads ------------------------------------------------------------


def test_set_from_another_thread_wakes_a_waiting_greenlet():
    event = Event()
    thread = _run_in_thread(event.set)
    # No timeout: if the wait did not keep the loop alive this raises LoopExit.
    assert event.wait() is True
    thread.join(10)


def test_set_via_run_callback_threadsafe_wakes_a_waiting_greenlet():
    event = Event()
    hub = get_hub()
    thread = _run_in_thread(hub.loop.run_callback_threadsafe, event.set)
    assert event.wait(timeout=10) is True
    thread.join(10)


def test_waiting_in_a_plain_thread_is_woken_by_a_greenlet():
    event = Event()
    parked = threading.Event()
    results = []

    def in_thread():
        parked.set()
        results.append(event.wait(timeout=10))
        get_hub().destroy()

    thread = threading.Thread(target=in_thread)
    thread.start()
    assert parked.wait(10)
    deadline = time.monotonic() + 10
    while not event._waiters and time.monotonic() < deadline:
        sleep(0.001)  # until the thread has parked on the event
    spawn(event.set).join(10)
    thread.join(10)
    assert results == [True]


# -- links and iwait ----------------------------------------------------------------


def test_rawlink_is_called_in_the_hub_each_time_the_event_is_set():
    event = Event()
    calls = []
    event.rawlink(calls.append)
    event.set()
    assert calls == []  # not synchronously
    sleep(0)
    assert calls == [event]
    event.clear()
    event.set()
    sleep(0)
    assert calls == [event, event]


def test_rawlink_on_a_set_event_is_called_and_unlink_stops_calls():
    event = Event()
    event.set()
    calls = []
    event.rawlink(calls.append)
    sleep(0)
    assert calls == [event]
    event.unlink(calls.append)
    event.clear()
    event.set()
    sleep(0)
    assert calls == [event]
    with pytest.raises(TypeError):
        event.rawlink(42)  # type: ignore[arg-type]


def test_unlink_drops_a_call_already_scheduled():
    event = Event()
    calls = []
    event.rawlink(calls.append)
    event.set()
    event.unlink(calls.append)
    sleep(0)
    assert calls == []


def test_iwait_yields_events_in_the_order_they_are_set():
    events = [Event() for _ in range(3)]
    spawn(events[2].set)
    greenpatch.spawn_later(0.01, events[0].set)
    greenpatch.spawn_later(0.02, events[1].set)
    assert list(greenpatch.iwait(events, timeout=10)) == [events[2], events[0], events[1]]
    assert all(not event._links for event in events)


def test_wait_on_events_with_a_count_and_timeout():
    events = [Event(), Event()]
    spawn(events[1].set)
    assert greenpatch.wait(events, timeout=10, count=1) == [events[1]]
    assert greenpatch.wait(events, timeout=0.01) == [events[1]]


# -- AsyncResult ------------------------------------------------------------------


def test_async_result_get_returns_the_value_set_later():
    result = AsyncResult()
    assert not result.ready() and result.value is None
    spawn(result.set, 42)
    assert result.get(timeout=10) == 42
    assert result.ready() and result.successful() and result.done()
    assert result.value == 42 and result.exception is None and result.exc_info is None


def test_async_result_get_reraises_the_exception_with_its_traceback():
    result = AsyncResult()

    def fail():
        try:
            raise Boom("bad")
        except Boom as exc:
            result.set_exception(exc)

    spawn(fail)
    with pytest.raises(Boom, match="bad") as info:
        result.get(timeout=10)
    assert any(entry.name == "fail" for entry in info.traceback)
    assert not result.successful()
    assert isinstance(result.exception, Boom)
    assert result.exc_info is not None and result.exc_info[0] is Boom
    assert result.wait(timeout=0) is None


def test_async_result_get_raises_timeout_when_not_ready_in_time():
    result = AsyncResult()
    with pytest.raises(Timeout):
        result.get(block=False)
    with pytest.raises(Timeout):
        result.get(timeout=0.01)
    with pytest.raises(Timeout):
        result.get_nowait()
    assert result.wait(timeout=0.01) is None
    assert not result._waiters


def test_async_result_wait_returns_the_value():
    result = AsyncResult()
    greenpatch.spawn_later(0.01, result.set, "v")
    assert result.wait(timeout=10) == "v"


def test_async_result_as_a_future():
    result = AsyncResult()
    done = []
    result.add_done_callback(done.append)
    with pytest.raises(concurrent.futures.TimeoutError):
        result.result(timeout=0.01)
    assert not result.cancel() and not result.cancelled()
    result.set("r")
    assert result.result(timeout=0) == "r"
    sleep(0)
    assert done == [result]
    result.add_done_callback(done.append)  # already done: called at once
    assert done == [result, result]


def test_async_result_receives_a_greenlet_outcome_by_link():
    ok, failed = AsyncResult(), AsyncResult()
    spawn(lambda: 7).link(ok)

    def fail():
        raise Boom("linked")

    glet = spawn(fail)
    glet.rawlink(failed)
    assert ok.get(timeout=10) == 7
    with pytest.raises(Boom, match="linked"):
        failed.get(timeout=10)


def test_async_result_set_from_another_thread_wakes_get():
    result = AsyncResult()
    thread = _run_in_thread(result.set, "from thread")
    assert result.get() == "from thread"
    thread.join(10)


def test_async_result_iwait():
    results = [AsyncResult(), AsyncResult()]
    spawn(results[1].set, 1)
    greenpatch.spawn_later(0.01, results[0].set, 0)
    assert list(greenpatch.iwait(results, timeout=10)) == [results[1], results[0]]
