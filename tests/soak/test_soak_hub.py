"""Soak: a million spawn/join cycles and tens of thousands of timed waits leave no residue.

Run with ``pytest -m soak tests/soak`` (``tox -e soak``).  Resident memory is read
from ``/proc/self/statm`` after a warm-up (pools, free lists and caches filled)
and at the end; it must stay within 10% of the warm figure.  Timed waits must
give back everything they took: the loop's active watchers, its live timers, and
the timer heaps' dead entries (cancelled timers are deleted lazily, see
``hub/timers.py``, so a bounded number may remain).
"""

from __future__ import annotations

import gc
import os
from typing import Any

import pytest

from greenpatch.hub import Event, Timeout, get_hub, joinall, sleep, spawn
from greenpatch.hub.greenlet import MAX_IDLE_WORKERS
from greenpatch.hub.loop import Loop

pytestmark = [pytest.mark.soak, pytest.mark.timeout(600)]

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

#: Cancelled entries a heap may keep before it compacts (``PythonTimers._timer_cancelled``).
LAZY_DELETION_SLACK = 256


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def timer_state(loop: Loop) -> dict[str, int]:
    return {
        "active watchers and live timers": loop.active_watcher_count,
        "libev watchers": loop.started_watchers,
        "live timers": loop.live_timers,
        # The counter must match the timers: a drift would misjudge the loop's liveness.
        "timer counter drift": loop.live_timers - len(list(loop.pending_timers())),
    }


def assert_timers_back(loop: Loop, before: dict[str, int]) -> None:
    for _ in range(3):
        sleep(0)  # queued wake-ups and cancellations run
    assert timer_state(loop) == before
    live = before["live timers"]
    dead = len(loop._timers) + len(loop._resume_run) + len(loop._resumes) - live
    assert dead <= LAZY_DELETION_SLACK + live, f"{dead} dead entries linger in the timer heaps"


# -- spawn / join -------------------------------------------------------------------------

TOTAL_CYCLES = 1_000_000
WARM_UP_CYCLES = 100_000
#: Every chunk of cycles: most spawned and joined one by one, a batch side by side
#: (more workers, each parking in sleep(0)), and some of the batch killed while parked.
CHUNK = 1000
BATCH = 100
KILLED_PER_BATCH = 10


def _value(number: int) -> int:
    return number


def _yield_then_return(number: int) -> list[int]:
    sleep(0)
    return [number]  # a fresh object per task: a kept value would show in memory


def _run_cycles(count: int, start: int) -> None:
    for base in range(start, start + count, CHUNK):
        for number in range(base, base + CHUNK - BATCH):
            glet = spawn(_value, number)
            glet.join()
            assert glet.value == number
        batch = [spawn(_yield_then_return, number) for number in range(BATCH)]
        sleep(0)  # every member is parked in its sleep(0) now
        for glet in batch[:KILLED_PER_BATCH]:
            glet.kill(block=False)
        joinall(batch)
        assert [glet.value for glet in batch[KILLED_PER_BATCH:]] == [
            [number] for number in range(KILLED_PER_BATCH, BATCH)
        ]


def test_a_million_spawn_join_cycles_keep_resident_memory_flat() -> None:
    hub = get_hub()
    before = timer_state(hub.loop)
    _run_cycles(WARM_UP_CYCLES, 0)
    gc.collect()
    warm = resident_bytes()
    _run_cycles(TOTAL_CYCLES - WARM_UP_CYCLES, WARM_UP_CYCLES)
    gc.collect()
    end = resident_bytes()
    print(f"resident after warm-up {warm / 2**20:.1f} MiB, at the end {end / 2**20:.1f} MiB")
    assert end <= warm * 1.10, f"resident memory grew from {warm} to {end} bytes"
    assert len(hub.module_state["greenpatch.hub.greenlet.idle_workers"]) <= MAX_IDLE_WORKERS
    assert hub.loop.pending_callbacks == 0
    assert_timers_back(hub.loop, before)


# -- timed waits ----------------------------------------------------------------------------

WAITS = 10_000
#: Greenlets waiting side by side, so that many timers share the heap at once.
WAITERS = 100
#: One wait in FIRE_EVERY runs out of time; the rest end first and cancel their timer.
FIRE_EVERY = 10
SHORT = 0.001  # seconds: the waits meant to time out
LONG = 30.0  # seconds: the waits meant to be cancelled


def _run_waiters(wait_once: Any) -> int:
    """Run WAITS waits in WAITERS greenlets; return how many timed out."""
    per_greenlet = WAITS // WAITERS
    glets = [
        spawn(lambda first: sum(wait_once(first + n) for n in range(per_greenlet)), index)
        for index, _ in enumerate(range(0, WAITS, per_greenlet))
    ]
    joinall(glets, raise_error=True)
    return sum(glet.value for glet in glets)


def test_ten_thousand_timeouts_cancelled_or_fired_leave_the_loop_as_found() -> None:
    loop = get_hub().loop
    before = timer_state(loop)
    never_set = Event()

    def wait_once(number: int) -> bool:
        if number % FIRE_EVERY == 0:
            with Timeout(SHORT, False):  # fires; the block swallows it
                never_set.wait()
                raise AssertionError("the event was never set")
            return True
        with Timeout(LONG):  # cancelled on leaving the block
            sleep(0)
        timeout = Timeout.start_new(LONG)  # and cancelled by hand
        timeout.cancel()
        return False

    assert _run_waiters(wait_once) == WAITS // FIRE_EVERY
    assert not never_set._waiters
    assert_timers_back(loop, before)


def test_ten_thousand_sleeps_finished_or_interrupted_leave_the_loop_as_found() -> None:
    loop = get_hub().loop
    before = timer_state(loop)

    def sleep_once(number: int) -> bool:
        if number % FIRE_EVERY == 0:
            sleep(SHORT)  # runs out: its own timer fires
            return True
        with Timeout(SHORT, False):  # interrupted: its timer is cancelled
            sleep(LONG)
        return False

    assert _run_waiters(sleep_once) == WAITS // FIRE_EVERY
    assert_timers_back(loop, before)


def test_ten_thousand_event_waits_with_timeouts_leave_the_loop_as_found() -> None:
    loop = get_hub().loop
    before = timer_state(loop)
    events: list[Event] = []

    def set_soon(event: Event) -> None:
        event.set()

    def wait_once(number: int) -> bool:
        event = Event()
        if number % FIRE_EVERY == 0:
            assert event.wait(SHORT) is False  # times out
            assert not event._waiters
            return True
        spawn(set_soon, event)  # set before the timeout: the timer is cancelled
        assert event.wait(LONG) is True
        events.append(event)
        return False

    assert _run_waiters(wait_once) == WAITS // FIRE_EVERY
    assert all(not event._waiters for event in events)
    assert_timers_back(loop, before)
