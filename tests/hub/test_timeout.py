"""Timeout and with_timeout."""

from __future__ import annotations

import socket

import pytest

import greenpatch
from greenpatch import Timeout, get_hub, sleep, spawn, with_timeout


def test_timeout_interrupts_a_blocked_wait_and_cleans_up_its_watcher():
    a, b = socket.socketpair()
    loop = get_hub().loop
    before = loop.active_watcher_count
    try:
        with pytest.raises(Timeout) as info, Timeout(0.02):
            greenpatch.wait_read(a.fileno())
        assert info.value.seconds == 0.02
        assert loop.active_watcher_count == before
    finally:
        a.close()
        b.close()


def test_timeout_false_is_silent():
    reached = []
    with Timeout(0.01, False):
        sleep(5)
        reached.append("not here")
    assert reached == []


def test_timeout_raises_a_custom_exception():
    with pytest.raises(ValueError, match="custom"), Timeout(0.01, ValueError("custom")):
        sleep(5)


def test_timeout_raises_a_custom_exception_class():
    with pytest.raises(KeyError), Timeout(0.01, KeyError):
        sleep(5)


def test_cancelled_timeout_never_fires():
    timeout = Timeout(0.01)
    timeout.start()
    assert timeout.pending
    timeout.cancel()
    assert not timeout.pending
    sleep(0.03)  # would raise if it fired


def test_timeout_none_never_fires():
    with Timeout(None):
        sleep(0.01)


def test_timeout_left_by_the_block_is_cancelled():
    loop = get_hub().loop
    before = loop.active_watcher_count
    with Timeout(10):
        pass
    assert loop.active_watcher_count == before


def test_timeout_inside_a_greenlet_only_hits_that_greenlet():
    def guarded():
        with Timeout(0.01, False):
            sleep(5)
        return "timed out quietly"

    other = spawn(sleep, 0.05)
    assert spawn(guarded).get(timeout=10) == "timed out quietly"
    other.join(10)
    assert other.successful()


def test_timeout_during_sleep_zero_loop():
    count = 0
    with Timeout(0.02, False):
        while True:
            count += 1
            sleep(0)
    assert count > 0
    sleep(0.01)  # a stale resume would disturb this sleep; it must not


def test_nested_timeouts_raise_the_inner_one_first():
    with pytest.raises(Timeout) as info, Timeout(5):
        with Timeout(0.01):
            sleep(1)
    assert info.value.seconds == 0.01


def test_str_and_repr():
    assert str(Timeout(2)) == "2 seconds"
    assert str(Timeout(1)) == "1 second"
    assert "pending" not in repr(Timeout(1))


def test_with_timeout_returns_value_or_default():
    assert with_timeout(5, lambda: "fast") == "fast"
    assert with_timeout(0.01, sleep, 5, timeout_value="default") == "default"
    with pytest.raises(Timeout):
        with_timeout(0.01, sleep, 5)


def test_start_new_and_double_start():
    timeout = Timeout.start_new(10)
    with pytest.raises(RuntimeError, match="already started"):
        timeout.start()
    timeout.cancel()


def test_ten_thousand_timeouts_started_and_cancelled_leave_nothing():
    loop = get_hub().loop
    before_count = loop.active_watcher_count
    before_heap = len(loop._timers)
    for _ in range(10_000):
        timeout = Timeout(60)
        timeout.start()
        timeout.cancel()
    assert loop.active_watcher_count == before_count
    # Cancelled entries are compacted away rather than piling up.
    assert len(loop._timers) - before_heap <= 512


# -- gevent's ways of passing a Timeout (issue 16) ---------------------------------


def test_a_timeout_object_bounds_join_which_returns_quietly():
    sleeper = spawn(sleep, 5)
    timer = Timeout.start_new(0.01)
    sleeper.join(timeout=timer)
    assert not sleeper.ready()
    assert not timer.pending
    sleeper.kill()


def test_a_timeout_object_passed_to_get_is_raised_itself():
    sleeper = spawn(sleep, 5)
    timer = Timeout(0.01)  # not started: get starts it
    with pytest.raises(Timeout) as info:
        sleeper.get(timeout=timer)
    assert info.value is timer
    sleeper.kill()


def test_a_timeout_object_carrying_its_exception_raises_that_from_join():
    sleeper = spawn(sleep, 5)
    with pytest.raises(ValueError, match="mine"):
        sleeper.join(timeout=Timeout(0.01, ValueError("mine")))
    sleeper.kill()


def test_a_timeout_object_is_cancelled_when_the_wait_ends_first():
    quick = spawn(lambda: 7)
    timer = Timeout.start_new(5)
    assert quick.get(timeout=timer) == 7
    assert not timer.pending


def test_event_and_async_result_take_a_timeout_object():
    assert greenpatch.Event().wait(timeout=Timeout(0.01)) is False
    result = greenpatch.AsyncResult()
    timer = Timeout(0.01)
    with pytest.raises(Timeout) as info:
        result.get(timeout=timer)
    assert info.value is timer
    assert result.wait(timeout=Timeout(0.01)) is None


def test_start_new_takes_gevents_keyword_and_ours():
    for timer in (Timeout.start_new(timeout=5), Timeout.start_new(seconds=5)):
        assert timer.pending and timer.seconds == 5
        timer.cancel()
    with pytest.raises(TypeError, match="both"):
        Timeout.start_new(5, seconds=5)


def test_an_unrefd_timeout_does_not_keep_the_loop_alive():
    timer = Timeout(5, ref=False)
    timer.start()
    try:
        assert timer.pending
        assert greenpatch.wait(timeout=10) is True  # the loop ran out of work at once
    finally:
        timer.cancel()
