"""Model-based tests: the green ``Event`` against ``threading.Event``, under interleavings.

A hypothesis state machine drives one green ``Event`` with random sequences of
``set``/``clear``/``is_set``/``wait(0)`` made by the test's own greenlet (each
also made on a ``threading.Event``, whose answers must match), blocking
``wait`` calls made by spawned greenlets ("actors"), kills, expired timeouts
and partial runs of the hub, so that the order in which the actors run varies.

The model keeps the flag, the line of blocked waiters in the order they began
to wait, and the waiters a ``set`` woke, and checks what ``Event`` documents:

* ``wait()`` returns True once the flag is set, even if it was cleared again
  before the waiter ran (as ``threading.Event.wait`` does), and False only
  after its timeout expired without a ``set``;
* waiters woken by one ``set`` resume in the order they started waiting;
* once the hub has nothing left to run, nobody waits while the flag is set, and
  each link (``rawlink``) has run once per time the event became set.

Timeouts never depend on the clock: blocking calls use a one-hour timeout, and
the rule that "expires" one moves the deadline of that waiter's timer into the
past, so the loop fires it at its next iteration like any due timer.

Runs are deterministic (no OS threads, no clock).  The default run is small;
set ``GREENPATCH_HYPOTHESIS_EXAMPLES`` (e.g. 2000) for a longer one.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from greenpatch import GreenletExit, get_hub, spawn
from greenpatch.hub.event import Event
from greenpatch.hub.greenlet import Greenlet
from tests.hub._models import (
    EXAMPLES,
    LONG_TIMEOUT,
    ActorMachine,
    cancel_expired_timers,
    expire_timer_of,
    live_timer_count,
    settle,
)

#: Hypothesis shrinks a failure for minutes; a hang is caught by ``settle``'s limit.
pytestmark = pytest.mark.timeout(900)


# -- driving the hub deterministically ------------------------------------------------


# -- the model ------------------------------------------------------------------------
@dataclass(eq=False)
class Actor:
    """A spawned greenlet waiting on the event once, and what the model knows of it."""

    name: str
    timeout: float | None = None
    task: Greenlet | None = None
    started: bool = False
    finished: bool = False
    expired: bool = False

    def __repr__(self) -> str:
        return self.name


class EventModel(ActorMachine):
    """One green ``Event`` and a ``threading.Event``, compared after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.actors: list[Actor] = []
        self.errors: list[BaseException] = []
        self.names = itertools.count()
        self.baseline_timers = live_timer_count()
        settle()

    @initialize(linked=st.booleans())
    def make_event(self, linked: bool) -> None:
        self.event = Event()
        self.reference = threading.Event()
        self.flag = False
        #: Blocked waiters in the order they began to wait; and those a set woke.
        self.line: list[Actor] = []
        self.woken: list[Actor] = []
        self.link_calls = 0
        self.became_set = 0
        self.linked = linked
        if linked:
            self.event.rawlink(self.on_set)

    def on_set(self, event: Event) -> None:
        self.link_calls += 1

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            raise AssertionError(message)

    # -- the test's greenlet ---------------------------------------------------------
    @rule()
    def set(self) -> None:
        if not self.flag:
            self.became_set += 1
            self.woken.extend(self.line)
            self.line.clear()
        self.flag = True
        self.event.set()
        self.reference.set()

    @rule()
    def clear(self) -> None:
        self.flag = False
        self.event.clear()
        self.reference.clear()

    @rule(timeout=st.sampled_from([0, -1, 0.0]))
    def wait_without_blocking(self, timeout: float) -> None:
        assert self.event.wait(timeout) == self.reference.wait(timeout) == self.flag

    # -- actors ------------------------------------------------------------------------
    def wait_body(self, actor: Actor) -> None:
        at_once = self.flag
        if not at_once:
            self.line.append(actor)
        try:
            got = self.event.wait(actor.timeout)
        except GreenletExit:
            for line in (self.line, self.woken):
                if actor in line:
                    line.remove(actor)
            raise
        if at_once:
            self.check(got is True, f"{actor.name}: wait() on a set event gave {got}")
            return
        if got:
            self.check(actor in self.woken, f"{actor.name}: wait() True though no set woke it")
            self.check(
                self.woken[0] is actor,
                f"{actor.name} resumed before {self.woken[: self.woken.index(actor)]}"
                " that began to wait earlier",
            )
            self.woken.remove(actor)
        else:
            self.check(actor.expired, f"{actor.name}: wait() False before its timeout")
            self.check(actor in self.line, f"{actor.name}: wait() False though a set woke it")
            self.line.remove(actor)

    @rule(timeout=st.sampled_from([None, LONG_TIMEOUT]), start=st.booleans())
    def spawn_waiter(self, timeout: float | None, start: bool) -> None:
        """Spawn a waiter; ``start`` lets the hub run until it has begun to wait."""
        actor = Actor(name=f"wait#{next(self.names)}", timeout=timeout)

        def run() -> None:
            actor.started = True
            try:
                self.wait_body(actor)
            except GreenletExit:
                raise
            except Exception as exc:  # a failed check: the test's greenlet raises it
                self.errors.append(exc)
            finally:
                actor.finished = True

        actor.task = spawn(run)
        self.actors.append(actor)
        if start:
            settle()

    def running(self) -> list[Actor]:
        return [actor for actor in self.actors if actor.task is not None and not actor.task.dead]

    @rule(pick=st.integers(0, 1000))
    def expire(self, pick: int) -> None:
        waiting = [actor for actor in self.running() if actor.timeout]
        if waiting:
            actor = waiting[pick % len(waiting)]
            assert actor.task is not None
            if expire_timer_of(actor.task):
                actor.expired = True

    # -- letting the hub run -----------------------------------------------------------

    @rule()
    def run_until_quiet(self) -> None:
        settle()
        self.raise_errors()
        assert not (self.flag and self.line), f"{self.line} wait though the event is set"
        assert not self.woken, f"{self.woken} were woken but never ran"
        if self.linked:
            assert self.link_calls == self.became_set, "a link ran more or less than once a set"

    # -- after every step ------------------------------------------------------------
    @invariant()
    def agrees_with_the_model(self) -> None:
        self.raise_errors()
        if not hasattr(self, "event"):
            return
        assert self.event.is_set() == self.reference.is_set() == self.flag
        assert self.event.ready() == self.flag
        by_task = {id(actor.task): actor for actor in self.actors}
        line = [by_task[id(token[0].task)] for _, token in self.event._waiters]
        assert line == self.line, "the line of waiters differs"

    def teardown(self) -> None:
        """Kill every actor and check that nothing is left behind."""
        try:
            for actor in self.actors:
                assert actor.task is not None
                actor.task.kill(block=False)
            settle()
            self.raise_errors()
            assert all(actor.task.dead for actor in self.actors)  # type: ignore[union-attr]
            if hasattr(self, "event"):
                assert not self.event._waiters
            assert not get_hub().loop._callbacks
            assert live_timer_count() == self.baseline_timers, "a wait left its timer behind"
        finally:
            # Whatever failed above, leave the hub clean for the next example.
            for actor in self.actors:
                if actor.task is not None and not actor.task.dead:
                    actor.task.kill(block=False)
            try:
                settle()
            finally:
                cancel_expired_timers()


EventModel.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=40,
    deadline=None,
    database=None,
)
TestEventBehavesLikeThreadingEventUnderInterleavings = EventModel.TestCase
