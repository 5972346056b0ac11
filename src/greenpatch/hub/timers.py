"""The loop's Python timers: ``call_later`` handles and the greenlets that sleep.

Every ``sleep``, ``Timeout`` and timed wait starts a timer, so they live in
Python rather than as one libev timer each (creating and starting a libev timer
costs two cffi crossings and an allocation); ``Loop`` arms a single libev timer
for the earliest deadline.  Deadlines are ``time.monotonic()`` values.

The layout
----------
Entries are ``(deadline, seq, target)`` tuples, ``seq`` breaking ties in the
order timers were added (one counter for all):

* ``_timers``: a heap of ``call_later``'s ``TimerHandle`` objects.  A
  cancelled handle says so and stays in the heap until it comes up, or until
  most of the heap is dead and it is compacted.
* ``_resume_run`` and ``_resumes``: greenlets to switch to, passing ``WOKEN``
  (``resume_later``, what ``Hub.sleep`` uses).  An entry whose deadline is not
  earlier than the last one in the ``_resume_run`` FIFO is appended to it (so
  it stays in deadline order); any other goes to the ``_resumes`` heap.  A
  cancelled entry is known by its ``seq`` in ``_cancelled_resumes``, and
  compacted likewise.

``_run_due_timers`` takes from the three in deadline order.

Why: a sleep costs one tuple, and usually no comparison.  With a
``TimerHandle`` per sleep and a bound ``switch`` method as its callback it cost
three objects, and 10,000 sleeping greenlets spent a tenth of their time in the
garbage collector (7% fewer instructions for 10,000 sleepers, 4-8% less time);
in a heap, each push and pop paid a tuple comparison per level (the FIFO took
10% more off, since sleeps of one duration always come in deadline order).
The handles keep a heap of their own so that their paths stay as they were: in
one heap every entry needs a test of its kind, which made started-and-
cancelled timeouts 5% dearer.  Rejected: a heap of bare deadlines with a dict
of what is due when (float comparisons are cheaper than tuple ones, but hashing
the deadline to add, cancel and fire a timer cost more than that saved), and
one FIFO per distinct duration (a timeout computed from a deadline would make a
FIFO of its own; the one FIFO plus a heap costs nothing when sleeps come out of
order).
"""

from __future__ import annotations

import heapq
import itertools
import sys
from collections import deque
from collections.abc import Iterator
from time import monotonic
from typing import Any, Callable

__all__ = ["WOKEN", "PythonTimers", "TimerHandle"]

#: What ``resume_later``'s timer passes to the greenlet it switches to.
WOKEN: Any = object()

_heappush = heapq.heappush
_heappop = heapq.heappop


class TimerHandle:
    """A pending ``Loop.call_later`` call; ``cancel()`` makes sure it never runs."""

    __slots__ = ("_loop", "_ref", "args", "callback", "cancelled", "deadline")

    def __init__(
        self,
        loop: PythonTimers,
        deadline: float,
        callback: Callable[..., Any],
        args: tuple[Any, ...],
    ):
        self._loop = loop
        self.deadline = deadline
        self.callback = callback
        self.args = args
        self.cancelled = False
        self._ref = True

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.callback = None  # type: ignore[assignment]  # release references early
            self.args = ()
            if not self._ref:
                self._loop._unref_timers -= 1
            self._loop._timer_cancelled()

    @property
    def ref(self) -> bool:
        """False: this timer alone does not keep the loop alive (it still fires)."""
        return self._ref

    @ref.setter
    def ref(self, value: bool) -> None:
        value = bool(value)
        if value != self._ref and not self.cancelled:
            self._loop._unref_timers += -1 if value else 1
        self._ref = value

    @property
    def pending(self) -> bool:
        return not self.cancelled and self.callback is not None

    def __repr__(self) -> str:
        state = "cancelled" if self.cancelled else f"due in {self.deadline - monotonic():.3f}s"
        return f"<TimerHandle {state} {self.callback!r}>"


_new_timer_handle = object.__new__

ErrorHandler = Callable[[Any, type[BaseException], BaseException, Any], None]


class PythonTimers:
    """The timer half of ``Loop`` (a base class, so that its hot paths stay methods of the loop)."""

    error_handler: ErrorHandler

    def _init_timers(self) -> None:
        #: ``call_later``: a heap of ``(deadline, seq, handle)``.
        self._timers: list[tuple[float, int, TimerHandle]] = []
        #: Handles in ``_timers`` that are cancelled (deleted lazily).
        self._cancelled_timers = 0
        #: Live handles whose ``ref`` is False.
        self._unref_timers = 0
        #: ``resume_later``: ``(deadline, seq, greenlet)`` entries, in a FIFO
        #: while their deadlines come in order (sleeps of one duration do), in
        #: a heap for those that come earlier than the FIFO's last.
        self._resume_run: deque[tuple[float, int, Any]] = deque()
        self._resumes: list[tuple[float, int, Any]] = []
        #: The ``seq`` of each cancelled entry still in one of them.
        self._cancelled_resumes: set[int] = set()
        #: Shared by both heaps: the order of timers due at the same instant.
        self._timer_seq = itertools.count()

    @property
    def live_timers(self) -> int:
        """Timers neither fired nor cancelled (for leak checks)."""
        return (
            len(self._timers)
            - self._cancelled_timers
            + len(self._resume_run)
            + len(self._resumes)
            - len(self._cancelled_resumes)
        )

    def call_later(self, seconds: float, callback: Callable[..., Any], *args: Any) -> TimerHandle:
        """Run ``callback(*args)`` after ``seconds`` (monotonic clock); returns a handle."""
        deadline = monotonic() + seconds
        # TimerHandle.__init__, inline: one Python call less per timeout.
        handle = _new_timer_handle(TimerHandle)
        handle._loop = self
        handle.deadline = deadline
        handle.callback = callback
        handle.args = args
        handle.cancelled = False
        handle._ref = True
        _heappush(self._timers, (deadline, next(self._timer_seq), handle))
        return handle

    def resume_later(self, seconds: float, glet: Any) -> int:
        """Switch to ``glet``, passing ``WOKEN``, after ``seconds``; returns a key.

        A timer without a handle, for ``Hub.sleep``: ``cancel_resume(key)``
        takes it back, and may only be called while it is pending (as it is
        for as long as ``glet`` waits for it: only the timer passes ``WOKEN``).
        Always counts as a reason for the loop to stay alive.  (``hub.sleep``
        makes the FIFO case inline: keep the two in step.)
        """
        seq = next(self._timer_seq)
        deadline = monotonic() + seconds
        run = self._resume_run
        if not run or deadline >= run[-1][0]:
            run.append((deadline, seq, glet))  # no comparisons to pay, in or out
        else:
            _heappush(self._resumes, (deadline, seq, glet))
        return seq

    def cancel_resume(self, key: int) -> None:
        """Take back a pending ``resume_later`` timer (deleted lazily, like handles)."""
        cancelled = self._cancelled_resumes
        cancelled.add(key)
        if len(cancelled) > 256 and len(cancelled) * 2 > len(self._resume_run) + len(self._resumes):
            self._compact_resumes()

    def _compact_resumes(self) -> None:
        cancelled = self._cancelled_resumes
        self._resume_run = deque(entry for entry in self._resume_run if entry[1] not in cancelled)
        self._resumes = [entry for entry in self._resumes if entry[1] not in cancelled]
        heapq.heapify(self._resumes)
        cancelled.clear()

    def _timer_cancelled(self) -> None:
        self._cancelled_timers += 1
        # Lazy deletion, compacted once most of the heap is dead, so that many
        # started-and-cancelled timeouts cost neither memory nor heap depth.
        if self._cancelled_timers > 256 and self._cancelled_timers * 2 > len(self._timers):
            self._timers = [entry for entry in self._timers if not entry[2].cancelled]
            heapq.heapify(self._timers)
            self._cancelled_timers = 0

    def _run_due_timers(self) -> bool:
        """Run the timers that are due, in deadline order; return whether any ran."""
        now = monotonic()
        ran = False
        while True:
            # Read again each time: a callback that cancels many timers compacts
            # a heap into a new list and resets the cancelled count for it.
            # Popping on from the old list would fire due entries the new list
            # still holds; they then count there as cancelled ones the count never
            # saw, it drifts below zero, and the loop believes in phantom timers
            # (never LoopExit, a busy loop instead of a block).
            timers = self._timers
            run = self._resume_run
            resumes = self._resumes
            if run and not resumes and not self._cancelled_resumes:
                # The common case, sleeps in order and none taken back: the
                # FIFO's head, if due and before the first handle.  (The same
                # decision as below, without its tests for the heap and for
                # cancelled entries: 2% fewer instructions per sleeper of
                # 10,000, measured; ties with a handle take the long way.)
                # Popped first and put back when not due (once per call):
                # reading the head and then popping it cost 4 bytecodes more.
                head = run.popleft()
                if head[0] <= now and (not timers or head[0] < timers[0][0]):
                    ran = True
                    try:
                        head[2].switch(WOKEN)
                    except Exception:
                        self.error_handler(head[2], *sys.exc_info())
                    continue
                run.appendleft(head)
            if run or resumes:
                # The earliest resume: the FIFO's head or the heap's (seq breaks
                # a tie); it goes first if it is due and before the first handle.
                head = run[0] if run else resumes[0]
                if run and resumes:
                    other = resumes[0]
                    if other[0] < head[0] or (other[0] == head[0] and other[1] < head[1]):
                        head = other
                if head[0] <= now and (
                    not timers
                    or head[0] < timers[0][0]
                    or (head[0] == timers[0][0] and head[1] < timers[0][1])
                ):
                    if run and head is run[0]:
                        run.popleft()
                    else:
                        _heappop(resumes)
                    _, seq, glet = head
                    cancelled = self._cancelled_resumes
                    if cancelled and seq in cancelled:
                        cancelled.discard(seq)
                        continue
                    ran = True
                    try:
                        glet.switch(WOKEN)
                    except Exception:
                        self.error_handler(glet, *sys.exc_info())
                    continue
            if not timers or timers[0][0] > now:
                break
            handle = _heappop(timers)[2]
            if handle.cancelled:
                self._cancelled_timers -= 1
                continue
            if not handle._ref:
                self._unref_timers -= 1
            callback, args = handle.callback, handle.args
            # Mark it done (not cancelled) so cancel() afterwards is harmless.
            handle.callback = None  # type: ignore[assignment]
            handle.args = ()
            handle.cancelled = True
            ran = True
            try:
                callback(*args)
            except Exception:
                self.error_handler(callback, *sys.exc_info())
        return ran

    def _next_timeout(self) -> float:
        """Seconds until the next deadline (0 when one has passed), -1.0 without timers."""
        timers = self._timers
        while timers and timers[0][2].cancelled:
            _heappop(timers)
            self._cancelled_timers -= 1
        run = self._resume_run
        resumes = self._resumes
        cancelled = self._cancelled_resumes
        while run and run[0][1] in cancelled:
            cancelled.discard(run.popleft()[1])
        while resumes and resumes[0][1] in cancelled:
            cancelled.discard(_heappop(resumes)[1])
        heads = [queue[0][0] for queue in (timers, run, resumes) if queue]
        if not heads:
            return -1.0
        return max(min(heads) - monotonic(), 0.0)

    def pending_timers(self) -> Iterator[tuple[float, Any]]:
        """``(deadline, target)`` for every live timer, in no particular order.

        A target is a ``TimerHandle`` or a greenlet that ``resume_later`` will
        switch to.  For diagnostics and tests.
        """
        for deadline, _, handle in list(self._timers):
            if not handle.cancelled:
                yield deadline, handle
        cancelled = self._cancelled_resumes
        for deadline, seq, glet in [*self._resume_run, *self._resumes]:
            if seq not in cancelled:
                yield deadline, glet

    def _drop_timers(self) -> None:
        """Forget every timer; a handle is marked done, so a late cancel() finds nothing."""
        for entry in self._timers:
            handle = entry[2]
            handle.cancelled = True
            handle.callback = None  # type: ignore[assignment]
            handle.args = ()
        self._timers.clear()
        self._cancelled_timers = 0
        self._unref_timers = 0
        self._resume_run.clear()
        self._resumes.clear()
        self._cancelled_resumes.clear()
