"""``Semaphore``, ``BoundedSemaphore``, ``Lock`` and ``RLock`` for greenlets and threads.

They block only the calling greenlet, and stay correct when several OS threads
use them: a thread pool worker or patched ``threading`` code may release a lock
a greenlet waits for, and a plain thread may block on one (it then waits on a
hub of its own, created on first use).

How a release reaches a waiter
------------------------------
Acquirers park as in ``event.py``: an entry ``(hub, token)`` whose token the
waiter makes, and clears when its wait ends, so that no stale resume can reach
it.  But they queue in FIFO order in their own deque, guarded with the counter
by one real ``_thread`` lock, and a woken entry stays in the queue until its
greenlet has run.  One invariant, kept by every operation under that lock,
gives fairness without lost wake-ups::

    notified == min(counter, len(queue))   and the notified waiters are the
                                           first ``notified`` ones in the queue

So a release wakes the oldest un-notified waiter; an acquire that does not park
succeeds only when ``counter > len(queue)``, i.e. when a slot is free that no
woken waiter was promised (no barging past the queue).  The woken greenlet
decrements the counter itself when it runs (it finds its entry in the notified
prefix).  A waiter that times out or is killed after it was notified gives its
promise to the next waiter in line; one that was not notified just leaves the
queue.  A waiter whose timer fires after it was notified takes the slot.

The wake-up itself is a resume queued on the waiter's hub: a ``(resume, token)``
entry from the hub's own thread, ``loop.run_callback_threadsafe`` (an async
watcher send) from any other thread.  ``release()`` never switches, so it is
safe in loop callbacks and in threads that have no hub.  While a greenlet waits
and other OS threads exist, a pending timer keeps its loop from raising
LoopExit (see ``event._arm`` for why, and for the trade-off).
"""

from __future__ import annotations

from _thread import allocate_lock
from _thread import get_ident as _real_get_ident
from collections import deque
from typing import Any

from greenlet import getcurrent

from greenpatch.hub.event import (
    _TIMED_OUT,
    _arm,
    _Entry,
    _Linkable,
    _wake,
)
from greenpatch.hub.hub import get_hub, getcurrent_task

__all__ = ["BoundedSemaphore", "Lock", "RLock", "Semaphore"]


class _CountingLock(_Linkable):
    """What ``Semaphore`` and ``Lock`` share: the counter, the FIFO queue, acquire."""

    __slots__ = ("_counter", "_notified", "_queue")

    def __init__(self, value: int) -> None:
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        super().__init__()
        self._counter = value
        self._queue: deque[_Entry] = deque()
        self._notified = 0

    @property
    def counter(self) -> int:
        """The current count: releases minus acquires, including slots promised to
        woken waiters that have not run yet."""
        return self._counter

    def _available(self) -> int:
        """How many acquires would succeed right now without blocking."""
        return max(self._counter - len(self._queue), 0)

    def ready(self) -> bool:
        """True when ``acquire()`` would not block (what ``iwait`` waits for)."""
        return self._counter > len(self._queue)

    def locked(self) -> bool:
        """True when ``acquire()`` would block."""
        return self._counter <= len(self._queue)

    # -- acquiring ------------------------------------------------------------
    def _acquire(self, blocking: bool, timeout: float | None) -> bool:
        lock = self._lock
        lock.acquire()  # not ``with``: the uncontended path, where ``with`` costs double
        try:
            if self._counter > len(self._queue):
                self._counter -= 1
                return True
        finally:
            lock.release()
        if not blocking or (timeout is not None and timeout <= 0):
            return False
        return self._acquire_slow(timeout)

    def _acquire_slow(self, timeout: float | None) -> bool:
        hub = get_hub()
        token = [getcurrent()]
        entry = (hub, token)
        lock = self._lock
        queue = self._queue
        with lock:
            if self._counter > len(queue):
                self._counter -= 1
                return True
            queue.append(entry)
        timer = _arm(hub, token, timeout)
        try:
            switch = hub.switch
            while True:
                timed_out = switch() is _TIMED_OUT
                with lock:
                    index = queue.index(entry)
                    if index < self._notified:
                        # Ours even if the timer fired as well: the slot was
                        # promised to us, and taking it is simpler than passing it on.
                        del queue[index]
                        self._notified -= 1
                        self._counter -= 1
                        return True
                    if timed_out:
                        del queue[index]
                        return False
                # Not notified, not timed out: a stray resume; keep waiting.
        except BaseException:
            with lock:
                self._leave(entry)
            raise
        finally:
            token.clear()  # no queued resume may reach us after this wait
            if timer is not None:
                timer.cancel()

    def _leave(self, entry: _Entry) -> None:
        """Take an abandoned wait out of the queue, passing its promise on.  Lock held."""
        queue = self._queue
        try:
            index = queue.index(entry)
        except ValueError:  # it had already settled
            return
        del queue[index]
        if index < self._notified:
            self._notified -= 1
            self._wake_next()

    def _wake_next(self) -> None:
        """Restore the invariant of the module docstring.  Lock held."""
        queue = self._queue
        target = min(self._counter, len(queue))
        if self._notified < target:
            ident = _real_get_ident()
            while self._notified < target:
                hub, token = queue[self._notified]
                _wake(hub, token, ident)
                self._notified += 1

    # -- releasing ------------------------------------------------------------
    def _release(self, n: int, bound: int | None) -> bool:
        """Add ``n`` to the counter unless that passes ``bound``; wake whom it allows."""
        lock = self._lock
        lock.acquire()  # not ``with``: every release passes here
        try:
            if bound is not None and self._counter + n > bound:
                return False
            self._counter += n
            if self._queue:
                self._wake_next()
            if self._waiters or self._links:
                self._notify_all()
        finally:
            lock.release()
        return True

    # -- waiting without acquiring -------------------------------------------
    def wait(self, timeout: float | None = None) -> int:
        """Block until ``acquire()`` would succeed, a release happens, or ``timeout``.

        Does not acquire.  Returns how many acquires would succeed now; that can
        be 0 when queued acquirers took what was released.
        """
        if not self.ready():
            self._park(timeout)
        with self._lock:
            return self._available()

    def _reset_after_fork(self, value: int) -> None:
        """In a forked child: forget waiters of the parent's greenlets and threads."""
        self._lock = allocate_lock()
        self._counter = value
        self._queue = deque()
        self._notified = 0
        self._waiters = deque()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} counter={self._counter} "
            f"waiters={len(self._queue)} at {id(self):#x}>"
        )


class Semaphore(_CountingLock):
    """A counter that ``acquire()`` decrements, blocking at zero; ``release()`` increments.

    Waiters get slots in the order they asked.  Usable as a context manager.
    """

    __slots__ = ()

    def __init__(self, value: int = 1) -> None:
        super().__init__(value)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a slot; return False if ``blocking`` is false or ``timeout`` passed."""
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        return self._acquire(blocking, timeout)

    def release(self, n: int = 1) -> None:
        """Give back ``n`` slots; from any greenlet, thread or loop callback."""
        if n < 1:
            raise ValueError("n must be one or more")
        self._release(n, None)

    def __enter__(self) -> bool:
        return self._acquire(True, None)

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


class BoundedSemaphore(Semaphore):
    """A ``Semaphore`` whose counter may not exceed its initial value."""

    __slots__ = ("_initial_value",)

    def __init__(self, value: int = 1) -> None:
        super().__init__(value)
        self._initial_value = value

    def release(self, n: int = 1) -> None:
        """Give back ``n`` slots; ValueError if that releases more than were taken."""
        if n < 1:
            raise ValueError("n must be one or more")
        if not self._release(n, self._initial_value):
            raise ValueError("Semaphore released too many times")


class Lock(_CountingLock):
    """A non-reentrant lock, like ``threading.Lock``; any greenlet or thread may release it."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(1)

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        """Acquire; ``timeout=-1`` (or None) waits forever.  Same errors as threading."""
        if timeout == -1 or timeout is None:
            timeout = None
        elif not blocking:
            raise ValueError("can't specify a timeout for a non-blocking call")
        elif timeout < 0:
            raise ValueError("timeout value must be a non-negative number")
        return self._acquire(blocking, timeout)

    def release(self) -> None:
        """Unlock; RuntimeError if it is not locked."""
        # _release(1, 1), inlined: patched threading code takes locks everywhere.
        lock = self._lock
        lock.acquire()
        try:
            if self._counter:
                raise RuntimeError("release unlocked lock")
            self._counter = 1
            if self._queue:
                self._wake_next()
            if self._waiters or self._links:
                self._notify_all()
        finally:
            lock.release()

    def _at_fork_reinit(self) -> None:
        """What ``threading`` calls on its locks in a forked child."""
        self._reset_after_fork(1)

    def __enter__(self) -> bool:
        # The uncontended path of _acquire, inlined: ``with lock:`` is the usual use.
        lock = self._lock
        lock.acquire()
        try:
            if self._counter > len(self._queue):
                self._counter = 0
                return True
        finally:
            lock.release()
        return self._acquire_slow(None)

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


class RLock:
    """A re-entrant lock owned by a greenlet task, like ``threading.RLock``.

    The owner is ``getcurrent_task()``: the ``Greenlet`` task, or the raw greenlet
    (for a plain thread, its main greenlet).  Provides the private methods that
    ``threading.Condition`` looks for, so ``threading.Condition(RLock())`` works.
    """

    __slots__ = ("__weakref__", "_count", "_mutex", "_owner")

    def __init__(self) -> None:
        self._mutex = Lock()
        self._owner: Any = None
        self._count = 0

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        me = getcurrent_task()
        if self._owner is me:
            self._count += 1
            return True
        if not self._mutex.acquire(blocking, timeout):
            return False
        self._owner = me
        self._count = 1
        return True

    def release(self) -> None:
        """Undo one ``acquire``; RuntimeError unless the current task owns the lock."""
        if self._owner is not getcurrent_task():
            raise RuntimeError("cannot release un-acquired lock")
        self._count = count = self._count - 1
        if not count:
            self._owner = None
            self._mutex.release()

    def locked(self) -> bool:
        return self._mutex.locked()

    def __enter__(self) -> bool:
        me = getcurrent_task()
        if self._owner is me:
            self._count += 1
            return True
        self._mutex.__enter__()
        self._owner = me
        self._count = 1
        return True

    def __exit__(self, *exc_info: Any) -> None:
        self.release()

    # -- what threading.Condition uses ----------------------------------------
    def _is_owned(self) -> bool:
        return self._owner is getcurrent_task()

    def _release_save(self) -> tuple[int, Any]:
        """Release completely, whatever the recursion depth; return what restores it."""
        if self._owner is not getcurrent_task():
            raise RuntimeError("cannot release un-acquired lock")
        state = (self._count, self._owner)
        self._count = 0
        self._owner = None
        self._mutex.release()
        return state

    def _acquire_restore(self, state: tuple[int, Any]) -> None:
        self._mutex.acquire()
        self._count, self._owner = state

    def _recursion_count(self) -> int:
        return self._count if self._owner is getcurrent_task() else 0

    def _at_fork_reinit(self) -> None:
        self._mutex._at_fork_reinit()
        self._owner = None
        self._count = 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} owner={self._owner!r} count={self._count} at {id(self):#x}>"
