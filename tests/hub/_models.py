"""Driving the hub deterministically for the model tests (test_models_*.py).

The models must choose the interleaving themselves: how many queued callbacks
run before the test's greenlet resumes, and when a waiter's timeout "expires"
(its timer is moved into the past, no clock involved).  These helpers reach into
the loop's queue and timer heap to do that; they are white-box on purpose.
"""

from __future__ import annotations

import heapq
import os
from typing import Any

from greenlet import getcurrent
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule

from greenpatch import GreenletExit, get_hub
from greenpatch.hub.greenlet import Greenlet
from greenpatch.hub.hub import resume
from greenpatch.hub.loop import TimerHandle

EXAMPLES = int(os.environ.get("GREENPATCH_HYPOTHESIS_EXAMPLES", "100"))


#: Long enough never to expire by itself during a test; the ``expire`` rule ends it.
LONG_TIMEOUT = 3600.0


def run_callbacks(count: int) -> None:
    """Let the hub run the first ``count`` queued callbacks, then come back.

    The test's resume is queued at position ``count`` instead of at the end (as
    ``sleep(0)`` would): a legitimate schedule, and a finer-grained one, so that
    non-blocking calls land between any two wake-ups.
    """
    hub = get_hub()
    callbacks = hub.loop._callbacks
    callbacks.insert(min(count, len(callbacks)), (resume, [getcurrent()]))
    hub.switch()


def due_timers() -> bool:
    """Whether a timer moved into the past by ``expire_timer_of`` has yet to fire."""
    return any(deadline <= 0 for deadline, _ in loop_timers())


def run_due_timers() -> None:
    """Let the hub finish its iteration and start the next, which fires the due timers.

    The test's resume is a timer too, due now: the heap puts it after the
    timers moved to deadline 0, so they have fired when the test runs again.
    """
    hub = get_hub()
    hub.loop.call_later(0, getcurrent().switch)
    hub.switch()


def settle(limit: int = 200) -> None:
    """Run the hub until it has nothing left to do now (callbacks or due timers)."""
    callbacks = get_hub().loop._callbacks
    for _ in range(limit):
        if callbacks:
            run_callbacks(len(callbacks))
        elif due_timers():
            run_due_timers()
        else:
            return
    raise AssertionError(f"the hub never settled: {len(callbacks)} callbacks keep coming")


def loop_timers() -> list[tuple[float, Any]]:
    """``(deadline, target)`` of every live timer (a TimerHandle or a sleeping greenlet)."""
    return list(get_hub().loop.pending_timers())


def live_timer_count() -> int:
    return len(loop_timers())


def cancel_expired_timers() -> None:
    """Cancel the timers that ``expire_timer_of`` moved into the past and nothing fired."""
    for deadline, target in loop_timers():
        if deadline <= 0 and isinstance(target, TimerHandle):
            target.cancel()


def expire_timer_of(task: Greenlet) -> bool:
    """Make the timeout timer of ``task``'s current wait due now; False if it has none.

    Waits arm a timer whose callback is the worker's ``switch`` or takes its resume
    token (``call_later(timeout, _expire, [worker])``); the timer
    stays pending, so the waiter can still cancel it, exactly as when time
    runs out on its own.
    """
    worker = getattr(task, "_worker", None)
    if worker is None:
        return False
    heap = get_hub().loop._timers
    for index, (_, seq, handle) in enumerate(heap):
        if handle.cancelled:
            continue
        callback, args = handle.callback, handle.args
        token = args[0] if args else None
        if getattr(callback, "__self__", None) is worker or (
            isinstance(token, list) and token and token[0] is worker
        ):
            handle.deadline = 0.0
            heap[index] = (0.0, seq, handle)
            heapq.heapify(heap)
            return True
    return False


class ActorMachine(RuleBasedStateMachine):
    """The rules every model shares: kill an actor, let the hub run a few callbacks.

    A subclass keeps ``errors`` (what its actors' checks raised) and ``running()``
    (its actors not yet dead).
    """

    errors: list[BaseException]

    def running(self) -> list[Any]:
        raise NotImplementedError

    def raise_errors(self) -> None:
        if self.errors:
            raise self.errors[0]

    @rule(pick=st.integers(0, 1000), first=st.booleans())
    def kill(self, pick: int, first: bool) -> None:
        """Kill an actor; the throw is queued, at the end or ``first`` in line.

        ``first`` is how a ``Timeout`` hits: its timer fires before the
        callbacks of the iteration run, e.g. before a wake-up already queued.
        """
        running = self.running()
        if running:
            task = running[pick % len(running)].task
            assert task is not None
            if first and task.started:
                get_hub().loop._callbacks.appendleft((task.throw, (GreenletExit(),)))
            else:
                task.kill(block=False)

    @rule(count=st.integers(0, 4))
    def run_some(self, count: int) -> None:
        run_callbacks(count)
