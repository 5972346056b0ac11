"""The loop's Python timers (``hub/timers.py``): handles and the greenlets that sleep.

``call_later`` handles and ``resume_later`` greenlets (what ``sleep`` uses) live
in two heaps; these tests check that together they behave as one timer queue:
deadline order, liveness, cancellation, and nothing left behind.
"""

from __future__ import annotations

import time

import pytest
from greenlet import getcurrent
from greenlet import greenlet as RawGreenlet

import greenpatch
from greenpatch import get_hub, sleep, spawn
from greenpatch.hub.loop import WOKEN, Loop


@pytest.fixture
def loop():
    loop = Loop()
    yield loop
    loop.destroy()


def _recorder(seen: list[object], name: str) -> RawGreenlet:
    """A greenlet that records ``name`` and what it was resumed with, then goes back."""
    main = getcurrent()

    def run(value: object) -> None:
        seen.append((name, value is WOKEN))
        main.switch()

    return RawGreenlet(run)


def test_handles_and_sleeping_greenlets_due_together_fire_in_deadline_order(loop):
    seen: list[object] = []
    first, last = _recorder(seen, "first"), _recorder(seen, "last")
    loop.resume_later(0.001, first)
    loop.call_later(0.002, seen.append, ("handle", True))
    loop.resume_later(0.003, last)
    time.sleep(0.01)  # all three are due by the next pass
    loop.run_once(block=False)
    assert seen == [("first", True), ("handle", True), ("last", True)]
    assert loop.live_timers == 0


def test_sleeps_added_out_of_deadline_order_still_fire_in_deadline_order(loop):
    # Resumes that come in deadline order queue up in a FIFO, the others go to
    # a heap: both, and the handles, are merged when they come due.
    seen: list[object] = []
    for name, delay in [("c", 0.003), ("a", 0.001), ("d", 0.004), ("b", 0.002)]:
        loop.resume_later(delay, _recorder(seen, name))
    loop.call_later(0.0025, seen.append, ("handle", True))
    time.sleep(0.01)
    loop.run_once(block=False)
    assert seen == [("a", True), ("b", True), ("handle", True), ("c", True), ("d", True)]
    assert loop.live_timers == 0


def test_a_cancelled_resume_never_switches_and_stops_counting(loop):
    seen: list[object] = []
    glet = _recorder(seen, "cancelled")
    key = loop.resume_later(0.001, glet)
    assert loop.live_timers == 1
    assert [target for _, target in loop.pending_timers()] == [glet]
    loop.cancel_resume(key)
    assert loop.live_timers == 0
    assert list(loop.pending_timers()) == []
    time.sleep(0.005)
    assert not loop.run_once(block=False), "a cancelled resume kept the loop alive"
    assert seen == []


def test_a_pending_resume_keeps_the_loop_alive_until_it_fires(loop):
    seen: list[object] = []
    loop.resume_later(0.02, _recorder(seen, "late"))
    started = time.monotonic()
    while not seen:
        assert loop.run_once(), "the loop gave up while a resume was pending"
        assert time.monotonic() - started < 10
    assert time.monotonic() - started >= 0.02
    assert not loop.run_once(block=False)


def test_killed_sleepers_leave_no_live_timer_and_their_entries_are_compacted():
    loop = get_hub().loop
    before = loop.live_timers
    # Durations that shrink and grow: entries in the FIFO and in the heap.
    sleepers = [spawn(sleep, 3600 + (n % 7) - (n % 3)) for n in range(600)]
    sleep(0)  # every one of them is asleep
    assert loop.live_timers == before + 600
    greenpatch.killall(sleepers)
    assert loop.live_timers == before
    # Deleted lazily, but not kept for the hour the sleeps would have lasted.
    assert len(loop._resume_run) + len(loop._resumes) < 600


def test_a_stray_switch_into_a_sleeping_greenlet_does_not_end_its_sleep():
    woke: list[float] = []

    def sleeper() -> None:
        sleep(0.05)
        woke.append(time.monotonic())

    started = time.monotonic()
    glet = spawn(sleeper)
    sleep(0)  # asleep now
    worker = glet._worker
    assert worker is not None
    get_hub().loop.run_callback(worker.switch, "stray")
    glet.join(timeout=10)
    assert woke and woke[0] - started >= 0.05
