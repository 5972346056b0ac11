"""Model-based tests: the green queues against the standard library's, under interleavings.

A hypothesis state machine drives one green queue (``Queue``, ``LifoQueue``,
``PriorityQueue`` or ``JoinableQueue``, bounded or not) with random sequences of
non-blocking calls made by the test's own greenlet, blocking ``get``/``put``/``join``
calls made by spawned greenlets ("actors"), kills, expired timeouts, and partial
runs of the hub, so that the order in which the actors run varies.

The reference is a plain ``queue.Queue`` (or ``LifoQueue``/``PriorityQueue``) of
the same ``maxsize``.  Every operation is applied to it at its linearization
point: a non-blocking call at once, an actor's call at the moment it returns
(the green queue takes or adds the item there, with no switch in between).  So
at every step the two queues hold the same items in the same order, and every
item an actor or the test got is the one the standard library gives.  Beside
that, the model keeps the lines of blocked getters and putters in the order
they blocked, and checks what the green queue documents:

* a blocked getter (putter) is served only when every one that blocked before
  it has been served or has left (fairness), as long as no call that did not
  block has taken an item (a slot) from under the line.  Such barging is allowed,
  and after it the order is not strict: a robbed waiter waits again in its first
  place, but one woken before it was woken again may be served first (the queue
  does not track wake-ups in flight; see the module docstring of the queue).  The
  strict check resumes once the line has emptied;
* once the hub has nothing left to run, no getter waits while items are there,
  no putter while there is room, and no joiner while no task is unfinished
  (no lost wake-ups), and the green lines are the model's, in the same order;
* a wait ends with ``Empty``/``Full`` (or ``join`` with False) only after its
  timeout expired.

Timeouts never depend on the clock: blocking calls use a one-hour timeout, and
the rule that "expires" one moves the deadline of that waiter's timer into the
past, so the loop fires it at its next iteration like any due timer.

Runs are deterministic (no OS threads, no clock).  The default run is small;
set ``GREENPATCH_HYPOTHESIS_EXAMPLES`` (e.g. 2000) for a longer one.
"""

from __future__ import annotations

import itertools
import queue as stdlib_queue
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    precondition,
    rule,
)

from greenpatch import GreenletExit, get_hub, spawn
from greenpatch.hub.greenlet import Greenlet
from greenpatch.hub.queue import Empty, Full, JoinableQueue, LifoQueue, PriorityQueue, Queue
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

KINDS: dict[str, tuple[type[Any], type[Any]]] = {
    "Queue": (Queue, stdlib_queue.Queue),
    "LifoQueue": (LifoQueue, stdlib_queue.LifoQueue),
    "PriorityQueue": (PriorityQueue, stdlib_queue.PriorityQueue),
    "JoinableQueue": (JoinableQueue, stdlib_queue.Queue),
}


# -- driving the hub deterministically ------------------------------------------------


# -- the model ------------------------------------------------------------------------
@dataclass(eq=False)
class Actor:
    """A spawned greenlet making one blocking call, and what the model knows of it."""

    name: str
    op: str  # "get", "put" or "join"
    item: int | None = None
    timeout: float | None = None
    task: Greenlet | None = None
    started: bool = False
    blocked: bool = False
    finished: bool = False
    expired: bool = False
    outcome: Any = None

    def __repr__(self) -> str:
        return self.name


class QueueModel(ActorMachine):
    """One green queue and its standard-library twin, compared after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.actors: list[Actor] = []
        self.errors: list[BaseException] = []
        self.names = itertools.count()
        self.items = itertools.count()
        # The model's lines, in the order the actors blocked.
        self.getters: list[Actor] = []
        self.putters: list[Actor] = []
        self.joiners: list[Actor] = []
        # The lines robbed by a call that did not block, since they last emptied.
        self.barged: set[int] = set()
        self.baseline_timers = live_timer_count()
        settle()

    @initialize(kind=st.sampled_from(sorted(KINDS)), maxsize=st.integers(0, 3))
    def make_queue(self, kind: str, maxsize: int) -> None:
        ours, theirs = KINDS[kind]
        self.kind = kind
        self.queue = ours(maxsize)
        self.reference = theirs(maxsize)

    # -- checks run inside the actors (recorded, raised by the test's greenlet) --------
    def check(self, condition: bool, message: str) -> None:
        if not condition:
            raise AssertionError(message)

    def served(self, line: list[Actor], actor: Actor) -> None:
        """``actor`` was served: if it blocked, nobody who blocked before it may still wait
        (unless the line was robbed, see the module docstring); if it did not block and
        others wait, it barged."""
        if not actor.blocked:
            self.note_barging(line)
            return
        if id(line) not in self.barged:
            self.check(
                line[0] is actor,
                f"{actor.name} was served before {[a.name for a in line[: line.index(actor)]]}"
                " that blocked earlier",
            )
        self.left(line, actor)

    def note_barging(self, line: list[Actor]) -> None:
        if line:
            self.barged.add(id(line))

    def left(self, line: list[Actor], actor: Actor) -> None:
        if actor in line:
            line.remove(actor)
        if not line:
            self.barged.discard(id(line))

    def get_body(self, actor: Actor) -> None:
        actor.started = True
        self.check(self.queue.empty() == self.reference.empty(), "empty() differs")
        if self.reference.empty():
            actor.blocked = True
            self.getters.append(actor)
        try:
            item = self.queue.get(timeout=actor.timeout)
        except Empty:
            actor.outcome = "Empty"
            self.check(actor.expired, f"{actor.name} raised Empty before its timeout expired")
            self.left(self.getters, actor)
            return
        except GreenletExit:
            self.left(self.getters, actor)
            raise
        actor.outcome = item
        try:
            expected = self.reference.get_nowait()
        except stdlib_queue.Empty:
            raise AssertionError(f"{actor.name} got {item!r} from a queue that is empty") from None
        self.check(item == expected, f"{actor.name} got {item!r}, the stdlib gives {expected!r}")
        self.served(self.getters, actor)

    def put_body(self, actor: Actor) -> None:
        actor.started = True
        self.check(self.queue.full() == self.reference.full(), "full() differs")
        if self.reference.full():
            actor.blocked = True
            self.putters.append(actor)
        try:
            self.queue.put(actor.item, timeout=actor.timeout)
        except Full:
            actor.outcome = "Full"
            self.check(actor.expired, f"{actor.name} raised Full before its timeout expired")
            self.left(self.putters, actor)
            return
        except GreenletExit:
            self.left(self.putters, actor)
            raise
        actor.outcome = "put"
        try:
            self.reference.put_nowait(actor.item)
        except stdlib_queue.Full:
            raise AssertionError(f"{actor.name} put into a full queue") from None
        self.served(self.putters, actor)

    def join_body(self, actor: Actor) -> None:
        actor.started = True
        if self.reference.unfinished_tasks:
            actor.blocked = True
            self.joiners.append(actor)
        try:
            done = self.queue.join(timeout=actor.timeout)
        except GreenletExit:
            self.left(self.joiners, actor)
            raise
        actor.outcome = done
        self.left(self.joiners, actor)
        expected = self.reference.unfinished_tasks == 0
        self.check(done == expected, f"{actor.name}: join() gave {done}, expected {expected}")
        self.check(done or actor.expired, f"{actor.name}: join() False before its timeout")

    def spawn_actor(self, op: str, body: Callable[[Actor], None], **fields: Any) -> None:
        actor = Actor(name=f"{op}#{next(self.names)}", op=op, **fields)

        def run() -> None:
            try:
                body(actor)
            except GreenletExit:
                actor.outcome = "killed"
                raise
            except Exception as exc:  # a failed check: the test's greenlet raises it
                self.errors.append(exc)
            finally:
                actor.finished = True

        actor.task = spawn(run)
        self.actors.append(actor)

    def running(self) -> list[Actor]:
        return [actor for actor in self.actors if not actor.task or not actor.task.dead]

    # -- non-blocking calls by the test's greenlet ----------------------------------
    @rule()
    def put_nowait(self) -> None:
        item = next(self.items)
        try:
            self.reference.put_nowait(item)
            expected = None
        except stdlib_queue.Full:
            expected = Full
        try:
            self.queue.put_nowait(item)
            got = None
        except Full:
            got = Full
        assert got is expected, f"put_nowait: {got} but the stdlib gives {expected}"
        if got is None:
            self.note_barging(self.putters)

    @rule()
    def get_nowait(self) -> None:
        try:
            expected: Any = self.reference.get_nowait()
        except stdlib_queue.Empty:
            expected = Empty
        try:
            got: Any = self.queue.get_nowait()
        except Empty:
            got = Empty
        assert got == expected, f"get_nowait gave {got!r}, the stdlib gives {expected!r}"
        if got is not Empty:
            self.note_barging(self.getters)

    @precondition(lambda self: self.kind == "JoinableQueue")
    @rule()
    def task_done(self) -> None:
        try:
            self.reference.task_done()
            expected = None
        except ValueError:
            expected = ValueError
        try:
            self.queue.task_done()
            got = None
        except ValueError:
            got = ValueError
        assert got is expected, f"task_done: {got} but the stdlib gives {expected}"

    @precondition(lambda self: self.kind == "JoinableQueue")
    @rule()
    def join_when_nothing_is_unfinished_returns_at_once(self) -> None:
        if not self.reference.unfinished_tasks:
            assert self.queue.join() is True

    # -- blocking calls by actors -----------------------------------------------------
    @rule(timeout=st.sampled_from([None, LONG_TIMEOUT]), start=st.booleans())
    def spawn_getter(self, timeout: float | None, start: bool) -> None:
        self.spawn_actor("get", self.get_body, timeout=timeout)
        if start:  # let it run until it blocks (or is done)
            settle()

    @rule(timeout=st.sampled_from([None, LONG_TIMEOUT]), start=st.booleans())
    def spawn_putter(self, timeout: float | None, start: bool) -> None:
        self.spawn_actor("put", self.put_body, item=next(self.items), timeout=timeout)
        if start:  # let it run until it blocks (or is done)
            settle()

    @precondition(lambda self: self.kind == "JoinableQueue")
    @rule(timeout=st.sampled_from([None, LONG_TIMEOUT]), start=st.booleans())
    def spawn_joiner(self, timeout: float | None, start: bool) -> None:
        self.spawn_actor("join", self.join_body, timeout=timeout)
        if start:  # let it run until it blocks (or is done)
            settle()

    @rule(pick=st.integers(0, 1000))
    def expire(self, pick: int) -> None:
        waiting = [actor for actor in self.running() if actor.timeout and actor.task]
        if waiting:
            actor = waiting[pick % len(waiting)]
            assert actor.task is not None
            if expire_timer_of(actor.task):
                actor.expired = True

    # -- letting the hub run -----------------------------------------------------------

    @rule()
    def run_until_quiet(self) -> None:
        settle()
        self.check_quiet()

    def check_quiet(self) -> None:
        """With nothing left to run, nobody may wait for what is there."""
        self.raise_errors()
        queue, reference = self.queue, self.reference
        assert not (self.getters and not reference.empty()), (
            f"items {list(reference.queue)} are there but {self.names_of(self.getters)} wait"
        )
        assert not (self.putters and not reference.full()), (
            f"there is room but {self.names_of(self.putters)} wait to put"
        )
        if self.kind == "JoinableQueue":
            assert not (self.joiners and not reference.unfinished_tasks), (
                f"no task is unfinished but {self.names_of(self.joiners)} wait in join()"
            )
        assert self.line_of(queue._getters) == self.getters, "getters' line differs"
        assert self.line_of(queue._putters) == self.putters, "putters' line differs"
        for actor in self.actors:
            # A task killed before it started never ran its body.
            dead = actor.task is not None and actor.task.dead
            assert dead == (actor.finished or (dead and not actor.started))

    def line_of(self, tokens: Any) -> list[Actor]:
        """The actors blocked in a green line, in its order (a token is ``[worker]``)."""
        by_task = {id(actor.task): actor for actor in self.actors}
        return [by_task[id(token[0].task)] for token in tokens]

    @staticmethod
    def names_of(actors: list[Actor]) -> list[str]:
        return [actor.name for actor in actors]

    # -- after every step ------------------------------------------------------------
    @invariant()
    def same_contents_as_the_standard_library(self) -> None:
        self.raise_errors()
        if not hasattr(self, "queue"):
            return
        queue, reference = self.queue, self.reference
        assert queue.qsize() == reference.qsize() == len(queue)
        assert queue.empty() == reference.empty()
        assert queue.full() == reference.full()
        if self.kind == "PriorityQueue":
            assert sorted(queue._items) == sorted(reference.queue)
        else:
            assert list(queue._items) == list(reference.queue)
        if self.kind == "JoinableQueue":
            assert queue.unfinished_tasks == reference.unfinished_tasks

    def teardown(self) -> None:
        """Kill every actor and check that nothing is left behind."""
        try:
            for actor in self.actors:
                assert actor.task is not None
                actor.task.kill(block=False)
            settle()
            self.raise_errors()
            assert all(actor.task.dead for actor in self.actors)  # type: ignore[union-attr]
            if hasattr(self, "queue"):
                assert not self.queue._getters and not self.queue._putters
                assert not getattr(self.queue, "_joiners", None)
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


QueueModel.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=40,
    deadline=None,
    database=None,
)
TestQueueBehavesLikeTheStandardLibrarysUnderInterleavings = QueueModel.TestCase


# -- what the model found ---------------------------------------------------------------
def test_two_getters_robbed_in_one_turn_are_still_served_in_the_order_they_blocked() -> None:
    """Found by the model: robbed getters used to re-queue at the very front, in the
    order they ran, so the second one jumped ahead of the first."""
    q: Queue[int] = Queue()
    served: list[tuple[str, int]] = []

    def getter(name: str) -> None:
        served.append((name, q.get()))

    first, second = spawn(getter, "first"), spawn(getter, "second")
    settle()
    assert q.getters == 2
    q.put(1)
    q.put(2)  # both getters are woken ...
    assert q.get_nowait() == 1
    assert q.get_nowait() == 2  # ... and both are robbed before they run
    settle()
    assert q.getters == 2 and not served
    q.put(3)
    settle()
    assert served == [("first", 3)]
    q.put(4)
    settle()
    assert served == [("first", 3), ("second", 4)]
    assert first.dead and second.dead
