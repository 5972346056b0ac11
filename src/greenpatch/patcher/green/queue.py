"""Green ``queue``: the stdlib queues on hub locks, and a lock-free green ``SimpleQueue``.

``Queue``, ``LifoQueue``, ``PriorityQueue``
-------------------------------------------
These *are* the stdlib classes (subclasses), with their ``mutex`` and three
conditions rebuilt on hub locks.  Everything else is the stdlib's own code:
``task_done``/``join``, ``qsize``/``empty``/``full``, ``put_nowait``/``get_nowait``,
3.13's ``shutdown``, the ``queue`` deque, ``unfinished_tasks``, and the
``_init``/``_qsize``/``_put``/``_get`` hooks that user subclasses override.
They work with or without the ``thread`` patch (``patch_all(thread=False)``
keeps real threads; these queues then still wait cooperatively in greenlets
and block plain threads), and across OS threads.

Rejected: ``greenpatch.hub.queue`` (``JoinableQueue`` for ``Queue``).  It is
faster, but it belongs to one hub -- a real thread's ``put`` (a thread started
before patching, a ``ThreadPool`` worker) would queue the getter's wake-up on a
hub that is asleep in epoll -- and it has none of the attributes and hooks that
code written against ``queue.Queue`` uses (``with q.mutex: q.queue.clear()``).

``SimpleQueue``
---------------
The stdlib's is C (``_queue.SimpleQueue``) and blocks the OS thread: after
patching ``threading`` alone, ``concurrent.futures.ThreadPoolExecutor`` (whose
green workers wait in ``SimpleQueue.get``) deadlocks the whole program.  It must
be re-entrant: ``put`` may run in a ``__del__`` or a weakref callback
(``ThreadPoolExecutor``'s does) while the same thread is inside ``get`` or
``put``.  So no lock at all here: items and parked getters live in deques whose
``append``/``popleft`` are atomic, and a getter re-checks for an item after
parking itself (see ``get``).  ``concurrent.futures.thread`` looks up
``queue.SimpleQueue`` when an executor is made, so the swap reaches it.

A failed non-blocking call (``get(False)``, ``put_nowait``) does not yield.
Rejected: yielding there so that busy-polling loops (``while True: try:
q.get(False) except Empty: pass``) make progress without preemption -- it
breaks the common "try without blocking, do some bookkeeping, then block"
sequence (``ThreadPoolExecutor``'s workers release their idle semaphore in
between, and with a switch there the executor starts threads it does not need).

Starvation
----------
Green threads are not preempted, and a ``get()`` that finds an item ready does
not wait, so a thread that keeps finding work -- a ``ThreadPoolExecutor``
worker whose tasks submit further tasks, two threads passing items back and
forth -- would never let any other thread of its OS thread run, the one that
would tell it to stop included.  So every ``YIELD_EVERY``-th blocking ``get()``
of a queue yields to the hub first (``sleep(0)``: every ready greenlet, timers
and I/O get their turn) and then takes its item.  Non-blocking calls
never yield (above), nor does a ``get()`` in the hub greenlet (a loop callback
must not switch) or in a plain thread that has no hub.  Rejected: yielding when
some time has passed since the last yield (a clock read on every call costs
more than the counter, and the hub does not record when a greenlet last
switched); a process-wide counter (one queue's busy getter would then make
unrelated queues yield, and threads of other OS threads would share it).  The
cost is a counter per call: see docs/patching-threads.md for figures.

``_queue.SimpleQueue``
----------------------
Code that imports the C class directly (``from _queue import SimpleQueue``)
gets ours too: the ``_queue`` patch (``green/_queue.py``) swaps that name for
the class below, which carries the C type's module and name and, like it,
cannot be pickled or copied.

Exceptions are the stdlib's (``queue.Empty``, ``queue.Full``, 3.13's
``queue.ShutDown``): not swapped, so ``except queue.Empty`` catches ours.
"""

from __future__ import annotations

import _thread
import queue as _stdlib
import sys
import threading
from collections import deque
from typing import Any, Generic, TypeVar

from greenlet import getcurrent

from greenpatch.hub import Hub, TimerHandle, get_hub, get_hub_if_exists
from greenpatch.hub import Lock as _HubLock

__target__ = "queue"
__implements__ = ["Queue", "LifoQueue", "PriorityQueue", "SimpleQueue"]

Empty = _stdlib.Empty
Full = _stdlib.Full
_StdlibQueue = _stdlib.Queue  # bound before the registry swaps queue.Queue for ours

#: A blocking ``get()`` yields before every this many-th call (see "Starvation").
#: Small enough that other threads get a turn about every millisecond behind a
#: busy ``ThreadPoolExecutor`` worker (a task costs 10-30 us); large enough that
#: the yield (a loop iteration, about 0.7 us) costs a get about 10 ns on average.
YIELD_EVERY = 64

_T = TypeVar("_T")

# Originals, bound before any patch: a wake-up must know the real OS thread.
_real_get_ident = _thread.get_ident
_real_count = _thread._count


def _pause() -> None:
    """Let the other ready greenlets of this OS thread run, where switching is allowed."""
    hub = get_hub_if_exists()
    if hub is not None and getcurrent() is not hub:
        hub.sleep(0)


class _Condition(threading.Condition):
    """``threading.Condition`` whose waits park on hub locks.

    The stdlib's ``wait`` makes its waiter with ``threading._allocate_lock``,
    which is green only under the ``thread`` patch; this one always is.
    """

    def wait(self, timeout: float | None = None) -> bool:
        if not self._is_owned():  # type: ignore[attr-defined]
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = _HubLock()
        waiter.acquire()
        self._waiters.append(waiter)  # type: ignore[attr-defined]
        saved_state = self._release_save()  # type: ignore[attr-defined]
        got_it = False
        try:
            if timeout is None:
                got_it = waiter.acquire()
            elif timeout > 0:
                got_it = waiter.acquire(True, timeout)
            else:
                got_it = waiter.acquire(False)
            return got_it
        finally:
            self._acquire_restore(saved_state)  # type: ignore[attr-defined]
            if not got_it:
                try:
                    self._waiters.remove(waiter)  # type: ignore[attr-defined]
                except ValueError:
                    pass


class Queue(_stdlib.Queue):  # type: ignore[type-arg]
    """``queue.Queue`` whose blocking calls wait on the hub."""

    def __init__(self, maxsize: int = 0) -> None:
        # The stdlib sets up everything (its attributes vary by version); then
        # the mutex and conditions are replaced before anyone can use them.
        super().__init__(maxsize)
        mutex: Any = _HubLock()
        self.mutex = mutex
        self.not_empty = _Condition(mutex)
        self.not_full = _Condition(mutex)
        self.all_tasks_done = _Condition(mutex)
        self._greenpatch_gets = 0

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """The stdlib's ``get``; every ``YIELD_EVERY``-th blocking call yields first."""
        if block:
            # Counted whether or not an item is ready: finding out takes the
            # mutex, and a get that waits yields anyway.
            gets = self._greenpatch_gets + 1
            if gets < YIELD_EVERY:
                self._greenpatch_gets = gets
            else:
                self._greenpatch_gets = 0
                _pause()
        return super().get(block, timeout)


class LifoQueue(Queue, _stdlib.LifoQueue):  # type: ignore[type-arg]
    """``queue.LifoQueue`` (and a green ``Queue``) whose blocking calls wait on the hub."""


class PriorityQueue(Queue, _stdlib.PriorityQueue):  # type: ignore[type-arg]
    """``queue.PriorityQueue`` (and a green ``Queue``) whose blocking calls wait on the hub."""


# -- SimpleQueue ---------------------------------------------------------------
#: What a getter's timer resumes it with; nothing else sends it.
_TIMED_OUT: Any = object()

#: Far enough to never fire; a keep-alive timer only has to be pending.
_KEEP_ALIVE_SECONDS = 1e9

#: A parked getter: its hub and its resume token ``[greenlet]`` (cleared when it leaves).
_Entry = tuple[Hub, list[Any]]


def _resume_token(token: list[Any]) -> None:
    if token:
        token[0].switch()


def _expire(token: list[Any]) -> None:
    if token:
        token[0].switch(_TIMED_OUT)


def _nothing() -> None:
    pass


def _remove_entry(entries: deque[_Entry], entry: _Entry) -> bool:
    for index, candidate in enumerate(entries):
        if candidate is entry:
            del entries[index]
            return True
    return False


def _contains(entries: deque[_Entry], entry: _Entry) -> bool:
    return any(candidate is entry for candidate in entries)


class SimpleQueue(Generic[_T]):
    """An unbounded FIFO queue like ``queue.SimpleQueue``, for greenlets and threads.

    ``put`` never blocks or switches and takes no lock, so it is safe in
    ``__del__``, weakref callbacks, signal handlers and loop callbacks.  A
    ``get`` that must wait parks its greenlet on its own hub; a ``put`` from
    another OS thread wakes that hub through its async watcher.
    """

    __slots__ = ("__weakref__", "_getters", "_items", "_ready_gets")

    def __init__(self) -> None:
        self._items: deque[_T] = deque()
        self._getters: deque[_Entry] = deque()
        self._ready_gets = 0  # blocking gets that found an item since the last yield

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put(self, item: _T, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; ``block`` and ``timeout`` are accepted and ignored, as in the stdlib."""
        self._items.append(item)
        self._wake_one()

    def put_nowait(self, item: _T) -> None:
        self.put(item)

    def _wake_one(self) -> None:
        """Wake the oldest getter that still waits (tokens of those that left are empty)."""
        getters = self._getters
        while getters:
            try:
                hub, token = getters.popleft()
            except IndexError:  # another thread took the last one meanwhile
                return
            if token:
                if hub.thread_ident == _real_get_ident():
                    hub.schedule_resume(token)
                else:
                    hub.loop.run_callback_threadsafe(_resume_token, token)
                return

    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        """Remove and return the oldest item; wait at most ``timeout`` s, else ``Empty``."""
        items = self._items
        if items and block:
            # A negative timeout is an error even with an item ready, as in C.
            if timeout is not None and timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            gets = self._ready_gets + 1
            if gets < YIELD_EVERY:
                self._ready_gets = gets
            else:
                # Before taking the item, not after: a getter killed while it
                # yields must not take an item with it.
                self._ready_gets = 0
                _pause()
        try:
            return items.popleft()
        except IndexError:
            pass
        if not block:
            raise Empty
        if timeout is not None:
            if timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            if timeout == 0:
                raise Empty
        return self._wait(timeout)

    def get_nowait(self) -> _T:
        return self.get(False)

    def _wait(self, timeout: float | None) -> _T:
        """Park until an item is there.

        The order is what makes it lock-free: a getter queues itself *then*
        looks for an item; a putter appends its item *then* pops a getter.  So
        either the getter sees the item, or the putter sees the getter.  A getter
        that was woken (its entry popped) but leaves without that wake-up's item
        -- it took another, or timed out -- passes the wake-up on.
        """
        self._ready_gets = 0  # waiting yields
        hub = get_hub()
        token = [getcurrent()]
        entry: _Entry = (hub, token)
        getters = self._getters
        items = self._items
        timer = _arm(hub, token, timeout)
        try:
            while True:
                if not _contains(getters, entry):
                    getters.append(entry)
                try:
                    return items.popleft()
                except IndexError:
                    pass
                if hub.switch() is _TIMED_OUT:
                    try:
                        return items.popleft()
                    except IndexError:
                        raise Empty from None
        finally:
            token.clear()  # a resume still queued for us does nothing now
            if timer is not None:
                timer.cancel()
            if not _remove_entry(getters, entry) and items and getters:
                self._wake_one()

    def __reduce_ex__(self, protocol: Any) -> Any:
        cls = type(self)  # a C type's name includes its module, a subclass's does not
        name = "_queue.SimpleQueue" if cls is SimpleQueue else cls.__name__
        raise TypeError(f"cannot pickle {name!r} object")

    def __repr__(self) -> str:
        return f"<greenpatch SimpleQueue qsize={len(self._items)} getters={len(self._getters)}>"


# It stands for the C type: code that checks where its queue comes from, and
# pickle's error message, see ``_queue.SimpleQueue``.
SimpleQueue.__module__ = "_queue"


def _arm(hub: Hub, token: list[Any], timeout: float | None) -> TimerHandle | None:
    """The timer of a wait: its timeout, or a keep-alive while other OS threads exist.

    A getter waiting for a ``put`` from another OS thread has nothing on its own
    loop that could wake it, so the hub would raise ``LoopExit`` at once; a
    pending timer keeps the loop waiting (the same trade-off as the hub's locks,
    see ``greenpatch/hub/event.py``: with another thread alive, a genuine
    deadlock hangs instead of raising).
    """
    if timeout is not None:
        return hub.loop.call_later(timeout, _expire, token)
    if not hub.loop.default or _real_count() > 0:
        return hub.loop.call_later(_KEEP_ALIVE_SECONDS, _nothing)
    return None


# -- the after hook ------------------------------------------------------------
def after_patch(queue_mod: Any, registry: Any) -> None:
    """Rebind the standard-library modules imported before patching that hold
    the original classes (``from queue import Queue``); later imports get ours."""
    holders = (
        ("multiprocessing.dummy", ("Queue", "JoinableQueue")),
        ("multiprocessing.dummy.connection", ("Queue",)),
    )
    for module_name, names in holders:
        module = sys.modules.get(module_name)
        for name in names:
            if module is not None and getattr(module, name, None) is _StdlibQueue:
                setattr(module, name, Queue)
