"""The loop's queue of calls to make soon (``CallbackQueue``), and ``resume``.

``Loop`` (``loop.py``) owns one queue and its lanes and runs them each
iteration; the hub and the synchronisation objects append to it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["CallbackQueue", "resume"]


def resume(glet: Any = None, _place: Any = None) -> None:
    """The callback of a resume entry ``(resume, token)`` in a ``CallbackQueue``.

    A token is a list ``[greenlet]``; the queue calls ``resume(*token)``, so
    clearing the token turns the queued entry into a no-op.  A second item, if
    any, is the waiter's own bookkeeping (the queues keep its place in line).
    Waiters that must be able to cancel a wake-up make the token themselves and
    wakers append ``(resume, token)`` (see ``Hub.schedule_resume``).
    """
    if glet is not None:
        glet.switch()


class CallbackQueue(deque):  # type: ignore[type-arg]  # entries: (callback, args)
    """The loop's FIFO of calls to make soon, in the loop's thread.

    An entry is a pair ``(callback, args)``, and the loop calls
    ``callback(*args)``.  ``args`` is a tuple, or the one-item list token of a
    resume entry ``(resume, token)``.  Anyone may ``append`` an entry (a C call:
    this is the hottest path of the scheduler, hence a ``deque`` and not a
    method that builds the tuple); only ``head_resume`` looks *into* entries,
    so that the layout is known here, with one exception that runs too often
    for a method call: ``Hub.switch`` (every wait) makes its test inline (a
    call there cost 4% of a ``sleep(0)``).  The worker loop in ``greenlet.py``
    compares the head with its lane's entry by identity.

    Rejected: a queue of small objects with a ``run()`` method; each queued
    call would cost an allocation and an attribute lookup more, and
    ``sleep(0)`` is one queued call.

    Lanes
    -----
    Even a pair costs two tuples when its args hold what changes from call to
    call, as in ``(start, (hub, task))``: 20,000 objects for the collector
    when 10,000 tasks are spawned at once.  A *lane* (``Loop.lane()``) is a
    FIFO of single arguments kept beside the queue: the caller appends the
    argument to the lane and one shared entry, made once, to the queue; the
    entry's callback pops the lane's head.  Each entry is queued with exactly
    one argument, and both are FIFO, so the entry always finds its own; the
    loop drops the lanes wherever it drops the queue.  No allocation per call.
    """

    __slots__ = ()

    def head_resume(self) -> list[Any] | None:
        """The token of the head entry if it resumes a greenlet (not removed); else None.

        ``Hub.switch`` hands off to that greenlet directly instead of going
        through the hub.  An empty token (a cancelled resume) is returned as is.
        """
        if self:
            head = self[0]
            if head[0] is resume:
                return head[1]  # type: ignore[no-any-return]
        return None
