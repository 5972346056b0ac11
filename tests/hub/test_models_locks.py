"""Model-based tests: the green locks against ``threading``'s, under interleavings.

Hypothesis state machines drive a green ``Lock``, ``Semaphore``,
``BoundedSemaphore`` or ``RLock`` with random sequences of non-blocking calls
made by the test's own greenlet, blocking ``acquire`` calls made by spawned
greenlets ("actors"), kills, expired timeouts and partial runs of the hub, so
that the order in which the actors run varies.

The model is a counter and a line of blocked actors in the order they blocked,
kept in plain Python as ``locks.py`` documents the semantics: the standard
library's (``RuntimeError`` on releasing an unlocked ``Lock`` or an ``RLock``
the caller does not own, ``ValueError`` on over-releasing a
``BoundedSemaphore``, re-entrancy counted per owner), plus FIFO hand-off: a
release promises its slot to the oldest blocked acquirer, and a non-blocking
acquire does not barge past the line (``threading`` lets it; ``locks.py`` says
why it does not).  After every step the model and the lock must agree on the
counter, the line (same actors, same order), who is promised a slot, and
``locked()``; an acquirer must be in the promised part of the line when its
``acquire`` returns True, and out of it when it returns False (only after its
timeout expired); once the hub has nothing left to run, no slot may be
promised to a waiter that was not woken (no lost wake-ups).

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
from typing import Any, Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    initialize,
    invariant,
    rule,
)

from greenpatch import GreenletExit, get_hub, spawn
from greenpatch.hub.greenlet import Greenlet
from greenpatch.hub.locks import BoundedSemaphore, Lock, RLock, Semaphore
from greenpatch.hub.queue import SimpleQueue
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

SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=40,
    deadline=None,
    database=None,
)


# -- driving the hub deterministically ------------------------------------------------


# -- the models ------------------------------------------------------------------------
@dataclass(eq=False)
class Actor:
    """A spawned greenlet, and what the model knows of it."""

    name: str
    timeout: float | None = None
    task: Greenlet | None = None
    started: bool = False
    finished: bool = False
    expired: bool = False
    #: RLock actors run commands sent to them; the others make one acquire.
    inbox: Any = None
    busy: bool = False

    def __repr__(self) -> str:
        return self.name


class _Machine(ActorMachine):
    """What both lock models share: actors, recorded failures, the hub, teardown."""

    def __init__(self) -> None:
        super().__init__()
        self.actors: list[Actor] = []
        self.errors: list[BaseException] = []
        self.names = itertools.count()
        #: Blocked acquirers, in the order they blocked.
        self.line: list[Actor] = []
        self.baseline_timers = live_timer_count()
        settle()

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            raise AssertionError(message)

    def spawn_actor(self, prefix: str, body: Callable[[Actor], None], **fields: Any) -> Actor:
        actor = Actor(name=f"{prefix}#{next(self.names)}", **fields)

        def run() -> None:
            actor.started = True
            try:
                body(actor)
            except GreenletExit:
                raise
            except Exception as exc:  # a failed check: the test's greenlet raises it
                self.errors.append(exc)
            finally:
                actor.finished = True

        actor.task = spawn(run)
        self.actors.append(actor)
        return actor

    def running(self) -> list[Actor]:
        return [actor for actor in self.actors if actor.task is not None and not actor.task.dead]

    def line_of(self, entries: Any) -> list[Actor]:
        """The actors in a green line of ``(hub, token)`` entries, in its order."""
        by_task = {id(actor.task): actor for actor in self.actors}
        return [by_task[id(token[0].task)] for _, token in entries]

    @rule(pick=st.integers(0, 1000))
    def expire(self, pick: int) -> None:
        waiting = [actor for actor in self.running() if actor.timeout]
        if waiting:
            actor = waiting[pick % len(waiting)]
            assert actor.task is not None
            if expire_timer_of(actor.task):
                actor.expired = True

    @rule()
    def run_until_quiet(self) -> None:
        settle()
        self.raise_errors()
        self.check_quiet()

    def check_quiet(self) -> None:
        raise NotImplementedError

    def teardown(self) -> None:
        """Kill every actor and check that nothing is left behind."""
        try:
            for actor in self.actors:
                assert actor.task is not None
                actor.task.kill(block=False)
            settle()
            self.raise_errors()
            assert all(actor.task.dead for actor in self.actors)  # type: ignore[union-attr]
            self.check_nothing_left()
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

    def check_nothing_left(self) -> None:
        raise NotImplementedError


COUNTING_KINDS = ["Lock", "Semaphore", "BoundedSemaphore"]


class CountingLockModel(_Machine):
    """``Lock``, ``Semaphore``, ``BoundedSemaphore``: a counter and a FIFO line.

    ``counter`` is the green lock's: releases minus acquires, including slots
    promised to woken acquirers that have not run yet.  The promised acquirers
    are the first ``min(counter, len(line))`` of the line.
    """

    @initialize(kind=st.sampled_from(COUNTING_KINDS), value=st.integers(0, 3))
    def make_lock(self, kind: str, value: int) -> None:
        self.kind = kind
        self.bound: int | None
        if kind == "Lock":
            self.lock: Any = Lock()
            self.counter = self.bound = 1
        else:
            value = max(value, 1) if kind == "BoundedSemaphore" else value
            self.lock = BoundedSemaphore(value) if kind == "BoundedSemaphore" else Semaphore(value)
            self.counter = value
            self.bound = value if kind == "BoundedSemaphore" else None

    def promised(self) -> list[Actor]:
        return self.line[: min(self.counter, len(self.line))]

    def would_acquire(self) -> bool:
        """Whether an acquire now succeeds at once: a slot nobody was promised is free."""
        return self.counter > len(self.line)

    # -- the test's greenlet ---------------------------------------------------------
    @rule()
    def acquire_nowait(self) -> None:
        expected = self.would_acquire()
        got = self.lock.acquire(blocking=False)
        assert got is expected, f"acquire(blocking=False) gave {got}, the model {expected}"
        if got:
            self.counter -= 1

    @rule(n=st.integers(1, 2))
    def release(self, n: int) -> None:
        if self.kind == "Lock":
            n = 1
            expected: Any = RuntimeError if self.counter else None
        elif self.bound is not None and self.counter + n > self.bound:
            expected = ValueError
        else:
            expected = None
        try:
            if self.kind == "Lock":
                self.lock.release()
            else:
                self.lock.release(n)
            got: Any = None
        except (RuntimeError, ValueError) as exc:
            got = type(exc)
        assert got is expected, f"release({n}) raised {got}, the model says {expected}"
        if got is None:
            self.counter += n

    # -- actors ------------------------------------------------------------------------
    def acquire_body(self, actor: Actor, call: Callable[[], bool]) -> None:
        at_once = self.would_acquire()
        if not at_once:
            self.line.append(actor)
        try:
            got = call()
        except GreenletExit:
            # A promised slot passes on to the next in line: the model's prefix moves.
            if actor in self.line:
                self.line.remove(actor)
            raise
        if at_once:
            self.check(got, f"{actor.name} failed to take a free slot")
            self.counter -= 1
            return
        promised = actor in self.promised()
        if got:
            self.check(
                promised,
                f"{actor.name} acquired while {self.promised()} were promised the slots",
            )
            self.counter -= 1
        else:
            self.check(actor.expired, f"{actor.name}: acquire() False before its timeout")
            self.check(not promised, f"{actor.name} timed out holding a promised slot")
        self.line.remove(actor)

    @rule(
        timeout=st.sampled_from([None, LONG_TIMEOUT]), use_with=st.booleans(), start=st.booleans()
    )
    def spawn_acquirer(self, timeout: float | None, use_with: bool, start: bool) -> None:
        lock = self.lock
        if use_with and timeout is None:
            # ``with lock:`` takes a path of its own (inlined for Lock).
            def call() -> bool:
                lock.__enter__()
                return True
        else:

            def call() -> bool:
                return bool(lock.acquire(timeout=timeout))

        self.spawn_actor("acquire", lambda actor: self.acquire_body(actor, call), timeout=timeout)
        if start:  # let it run until it blocks (or is done)
            settle()

    # -- checks --------------------------------------------------------------------------
    @invariant()
    def agrees_with_the_model(self) -> None:
        self.raise_errors()
        if not hasattr(self, "lock"):
            return
        lock = self.lock
        assert lock.counter == self.counter
        assert self.line_of(lock._queue) == self.line, "the line differs"
        assert lock._notified == len(self.promised())
        assert lock.locked() == (not self.would_acquire())
        assert lock.ready() == self.would_acquire()

    def check_quiet(self) -> None:
        assert not self.promised(), f"{self.promised()} were promised slots but never ran"

    def check_nothing_left(self) -> None:
        if hasattr(self, "lock"):
            assert not self.lock._queue and not self.lock._notified


class RLockModel(_Machine):
    """``RLock``: an owner with a recursion count, over a FIFO ``Lock``.

    Actors live as long as the example and run the commands the test sends them
    (acquire, release), so that different owners take turns.  ``mutex`` is the
    inner lock's counter: 1 with a non-empty line means the lock is promised to
    the first actor in it, which becomes the owner when it runs.
    """

    @initialize()
    def make_lock(self) -> None:
        self.lock = RLock()
        self.owner: Any = None  # an Actor, "main" (the test's greenlet) or None
        self.count = 0
        self.mutex = 1

    def promised(self) -> Actor | None:
        return self.line[0] if self.mutex and self.line else None

    def try_acquire(self, who: Any) -> bool:
        """A non-blocking acquire by ``who``, in the model."""
        if self.owner is who:
            self.count += 1
            return True
        if self.mutex > len(self.line):
            self.mutex, self.owner, self.count = 0, who, 1
            return True
        return False

    def release_by(self, who: Any) -> type[BaseException] | None:
        if self.owner is not who:
            return RuntimeError
        self.count -= 1
        if not self.count:
            self.owner = None
            self.mutex = 1
        return None

    # -- the test's greenlet ---------------------------------------------------------
    @rule()
    def acquire_nowait(self) -> None:
        expected = self.try_acquire("main")
        got = self.lock.acquire(blocking=False)
        assert got is expected, f"acquire(blocking=False) gave {got}, the model {expected}"

    @rule()
    def release(self) -> None:
        expected = self.release_by("main")
        try:
            self.lock.release()
            got = None
        except RuntimeError:
            got = RuntimeError
        assert got is expected, f"release() raised {got}, the model says {expected}"

    # -- actors --------------------------------------------------------------------------
    def actor_body(self, actor: Actor) -> None:
        while True:
            command = actor.inbox.get()
            actor.busy = True
            if command == "release":
                expected = self.release_by(actor)
                try:
                    self.lock.release()
                    got = None
                except RuntimeError:
                    got = RuntimeError
                self.check(got is expected, f"{actor.name}: release() raised {got}")
            elif command == "acquire_nowait":
                expected_ok = self.try_acquire(actor)
                got_ok = self.lock.acquire(blocking=False)
                self.check(got_ok is expected_ok, f"{actor.name}: acquire(False) gave {got_ok}")
            else:
                self.blocking_acquire(actor)
            actor.busy = False

    def blocking_acquire(self, actor: Actor) -> None:
        if self.try_acquire(actor):
            got = self.lock.acquire(timeout=actor.timeout)
            self.check(got is True, f"{actor.name} failed to take a free lock")
            return
        self.line.append(actor)
        try:
            got = self.lock.acquire(timeout=actor.timeout)
        except GreenletExit:
            if actor in self.line:
                self.line.remove(actor)
            raise
        promised = self.promised() is actor
        if got:
            self.check(promised, f"{actor.name} acquired, but {self.promised()} was promised it")
            self.mutex, self.owner, self.count = 0, actor, 1
        else:
            self.check(actor.expired, f"{actor.name}: acquire() False before its timeout")
            self.check(not promised, f"{actor.name} timed out holding a promised lock")
        self.line.remove(actor)

    @rule(timeout=st.sampled_from([None, LONG_TIMEOUT]))
    def spawn_actor_for_rlock(self, timeout: float | None) -> None:
        if len(self.actors) < 4:
            self.spawn_actor("owner", self.actor_body, timeout=timeout, inbox=SimpleQueue())

    @rule(
        pick=st.integers(0, 1000),
        command=st.sampled_from(["acquire", "acquire_nowait", "release"]),
        start=st.booleans(),
    )
    def send(self, pick: int, command: str, start: bool) -> None:
        """Tell an idle actor to do something; it runs when the hub lets it."""
        idle = [
            actor
            for actor in self.running()
            if not actor.busy and not actor.inbox.qsize() and actor not in self.line
        ]
        if idle:
            idle[pick % len(idle)].inbox.put_nowait(command)
            if start:  # let it run until it blocks (or is done)
                settle()

    # -- checks --------------------------------------------------------------------------
    @invariant()
    def agrees_with_the_model(self) -> None:
        self.raise_errors()
        if not hasattr(self, "lock"):
            return
        lock = self.lock
        assert lock._mutex.counter == self.mutex
        assert self.line_of(lock._mutex._queue) == self.line, "the line differs"
        assert lock.locked() == (self.mutex <= len(self.line))
        # Who owns it, as the test's greenlet sees it (the private methods Condition uses).
        assert lock._is_owned() == (self.owner == "main")
        assert lock._recursion_count() == (self.count if self.owner == "main" else 0)
        if isinstance(self.owner, Actor):
            assert lock._owner is self.owner.task and lock._count == self.count
        elif self.owner is None:
            assert lock._owner is None and lock._count == 0

    def check_quiet(self) -> None:
        promised = self.promised()
        assert promised is None, f"{promised} was promised the lock but never ran"

    def check_nothing_left(self) -> None:
        assert not self.lock._mutex._queue and not self.lock._mutex._notified


CountingLockModel.TestCase.settings = SETTINGS
RLockModel.TestCase.settings = SETTINGS
TestLockAndSemaphoresKeepFifoHandOffUnderInterleavings = CountingLockModel.TestCase
TestRLockOwnershipAndRecursionMatchThreadingUnderInterleavings = RLockModel.TestCase


# -- the standard library's argument checks -----------------------------------------------
@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(Lock, threading.Lock), (RLock, threading.RLock)],
    ids=["Lock", "RLock"],
)
def test_lock_argument_errors_match_threading(ours: Any, theirs: Any) -> None:
    for lock in (ours(), theirs()):
        with pytest.raises(ValueError):
            lock.acquire(False, 1)
        with pytest.raises(ValueError):
            lock.acquire(True, -2)
        with pytest.raises(RuntimeError):
            lock.release()


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(Semaphore, threading.Semaphore), (BoundedSemaphore, threading.BoundedSemaphore)],
    ids=["Semaphore", "BoundedSemaphore"],
)
def test_semaphore_argument_errors_match_threading(ours: Any, theirs: Any) -> None:
    for make in (ours, theirs):
        with pytest.raises(ValueError):
            make(-1)
        sem = make(1)
        with pytest.raises(ValueError):
            sem.acquire(False, 1)
        with pytest.raises(ValueError):
            sem.release(0)
