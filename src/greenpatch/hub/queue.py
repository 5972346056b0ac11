"""Queues for greenlets: FIFO, LIFO, priority, joinable, and the rendezvous ``Channel``.

They raise the standard library's ``queue.Empty`` and ``queue.Full``, so code
written against ``queue.Queue`` catches the same exceptions.  A queue belongs to
the hub of the thread that uses it; it is not for passing items between OS threads.

Who takes the item
------------------
A blocked getter is a one-item list ``[greenlet]`` waiting in ``_getters``.  A put
appends its item to the queue and queues a resume of the *first* getter; it never
hands the item over.  The getter, once resumed, takes an item itself.  So an item
is always either in the queue or returned by ``get()``: a getter that times out or
is killed between being woken and running cannot take an item with it.  When the
wake-up and the timeout fall due in the same turn and the timeout runs first, the
getter raises ``Empty`` and the wake-up passes to the next getter (``queue.Queue``
would let the item win); nothing is lost either way.  Putters
and the ``maxsize`` bound work the same way round: a get frees a slot and wakes the
first blocked putter, which then appends its own item.

The one-item list is the token of ``Hub.resume_soon``: the waker queues it exactly
as ``resume_soon`` would, which lets ``Hub.switch`` jump straight to the woken
greenlet (one switch, not two).  The waiter creates the token itself rather than
getting one from ``resume_soon`` at wake-up time, because it must be able to clear
it: a waiter that leaves early (timeout, kill) clears its token so that a resume
already queued for it does nothing, and, if it had been woken, passes the wake-up
on to the next waiter so the item (or slot) it was woken for is not left unclaimed.

Barging, and why it is allowed
------------------------------
Between the wake-up and the resume, a greenlet that calls ``get_nowait()`` may take
the item first, as a thread may with ``queue.Queue``.  The robbed getter then waits
again in the place it first blocked in -- ahead of everyone who blocked after it,
behind any other robbed getter that blocked before it.  (Each waiter's token
remembers that order; re-queueing at the very front reversed two getters robbed
in one turn.)  Without barging, blocked getters are served strictly in the order
they blocked.  After it the order is close but not strict: a getter that was
woken (for an item since stolen) before the robbed one was woken again keeps its
wake-up, and may take the next item first.  Making that strict would mean
tracking wake-ups in flight on every put and get; ``queue.Queue`` promises no
order at all.  Nothing is lost either way: the hub never idles while a getter
waits and an item is there.
Rejected: reserving woken-for items (every non-blocking call would pay for a
reservation count); handing the item to the getter directly (then a
timeout or kill must put it back, and "back" is ambiguous for LIFO and priority
queues).

The ``Channel`` is the exception: it has no buffer, so a putter waits in
``_putters`` *with* its item and the getter takes it from there.  A putter whose
time runs out withdraws the item only if no getter took it yet; otherwise its put
succeeded.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterator
from queue import Empty, Full
from typing import Any, Callable, Generic, TypeVar

from greenlet import getcurrent

from greenpatch.hub.hub import Hub, get_hub, resume

__all__ = [
    "Channel",
    "Empty",
    "Full",
    "JoinableQueue",
    "LifoQueue",
    "PriorityQueue",
    "Queue",
    "SimpleQueue",
]

_T = TypeVar("_T")

#: Sent into a waiting greenlet by its timer; anything else it receives is a wake-up.
_TIMED_OUT: Any = object()


#: Gives every blocking wait its place in line: a waiter's token is
#: ``[greenlet, order]`` (``resume`` ignores the second item).  Rejected: a list
#: subclass with an ``order`` attribute, which cost Queue(maxsize=1) 18%.
_block_order = itertools.count()


def _requeue(waiters: deque[Any], token: list[Any]) -> None:
    """Put a robbed waiter back in line in the order it first blocked in.

    The line is sorted by ``order``: waiters join at the end with a fresh number,
    and leave from the front or from anywhere.  Robbed waiters are few and sort
    near the front, so the scan is short.
    """
    order = token[1]
    for index, other in enumerate(waiters):
        if other[1] > order:
            waiters.insert(index, token)
            return
    waiters.append(token)


def _remove_entry(waiters: deque[Any], entry: Any) -> bool:
    """Remove ``entry`` from ``waiters`` by identity; False when it is not there.

    By identity because entries can hold user items whose ``__eq__`` may be costly,
    odd or raise.  Linear, but only run when a wait ends early.
    """
    for index, candidate in enumerate(waiters):
        if candidate is entry:
            del waiters[index]
            return True
    return False


def _contains(waiters: deque[Any], entry: Any) -> bool:
    return any(candidate is entry for candidate in waiters)


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and timeout < 0:
        raise ValueError("'timeout' must be a non-negative number")


def _wait_turn(
    hub: Hub,
    waiters: deque[list[Any]],
    ready: Callable[[], bool],
    timeout: float | None,
    timeout_exc: type[BaseException] | None,
    wake_all: bool = False,
) -> bool:
    """Block in the ``waiters`` line until woken with ``ready()`` true.

    Returns True then, with no switch since ``ready()`` was checked, so the
    caller can act on it.  On timeout: raise ``timeout_exc``, or, when it is
    None, return ``ready()``.  The wakers queue ``(resume, token)`` on the hub; see the module
    docstring.  ``wake_all`` waiters are all woken together, so one leaving early
    has no wake-up to pass on.
    """
    glet = getcurrent()
    token = [glet, next(_block_order)]
    waiters.append(token)
    timer = None if timeout is None else hub.loop.call_later(timeout, glet.switch, _TIMED_OUT)
    try:
        while True:
            if hub.switch() is _TIMED_OUT:
                if timeout_exc is not None:
                    raise timeout_exc
                # Report what holds now: the wait may have ended as time ran out.
                finished = ready()
                _leave_line(hub._callbacks, waiters, token, ready, wake_all)
                return finished
            if ready():
                return True
            # Robbed by a non-blocking call, or woken by a broadcast that no longer
            # holds: wait again in our old place.  (A stray resume, which should
            # not happen, leaves the token in line: do not queue it twice.)
            if not _contains(waiters, token):
                _requeue(waiters, token)
    except BaseException:
        _leave_line(hub._callbacks, waiters, token, ready, wake_all)
        raise
    finally:
        if timer is not None:
            timer.cancel()


def _leave_line(
    callbacks: deque[Any],
    waiters: deque[list[Any]],
    token: list[Any],
    ready: Callable[[], bool],
    wake_all: bool,
) -> None:
    """A waiter gives up: forget its resume; pass on a wake-up it did not use."""
    if _remove_entry(waiters, token):
        return
    token.clear()  # woken, but leaving: the queued resume must not fire later
    if waiters and not wake_all and ready():
        callbacks.append((resume, waiters.popleft()))


class Queue(Generic[_T]):
    """A FIFO queue; ``maxsize`` 0 or None means unbounded.

    ``put`` blocks while the queue is full, ``get`` while it is empty; both accept
    ``timeout`` and raise ``queue.Full`` / ``queue.Empty``.  Blocked getters, and
    blocked putters, are served in the order they blocked.  Iterating yields items
    until the item ``StopIteration`` is got.
    """

    __slots__ = ("__weakref__", "_callbacks", "_getters", "_items", "_maxsize", "_putters")

    _items: Any  # a deque here, a heap list in PriorityQueue

    def __init__(self, maxsize: int | None = None) -> None:
        self._items = deque()
        # 0 is unbounded, as in queue.Queue; negative sizes too.
        self._maxsize = maxsize if maxsize is not None and maxsize > 0 else 0
        self._getters: deque[list[Any]] = deque()
        self._putters: deque[list[Any]] = deque()
        # The hub's callback queue, where wake-ups go.  Set by whoever blocks, so
        # it is set whenever there is anyone to wake; unset until then so that a
        # queue made at import time creates no hub.
        self._callbacks: Any = None

    # -- state ----------------------------------------------------------------
    @property
    def maxsize(self) -> int:
        """The bound on the number of items; 0 means unbounded (as ``queue.Queue``)."""
        return self._maxsize

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self._maxsize <= len(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        """Always True, so that ``if queue:`` does not quietly test for emptiness."""
        return True

    @property
    def getters(self) -> int:
        """How many greenlets are blocked in ``get``."""
        return len(self._getters)

    @property
    def putters(self) -> int:
        """How many greenlets are blocked in ``put``."""
        return len(self._putters)

    def __repr__(self) -> str:
        bound = f" maxsize={self._maxsize}" if self._maxsize else ""
        return (
            f"<{type(self).__name__}{bound} qsize={len(self._items)} "
            f"getters={len(self._getters)} putters={len(self._putters)}>"
        )

    # -- putting --------------------------------------------------------------
    def put(self, item: _T, block: bool = True, timeout: float | None = None) -> None:
        """Add ``item``; while full, wait (at most ``timeout`` s), else raise ``Full``."""
        # Attribute reads rather than locals: measurably faster on this hot path.
        if self._maxsize and len(self._items) >= self._maxsize:
            self._wait_for_space(block, timeout)
        self._items.append(item)
        if self._getters:
            self._callbacks.append((resume, self._getters.popleft()))

    def put_nowait(self, item: _T) -> None:
        """Add ``item`` or raise ``Full``; never blocks."""
        self.put(item, False)

    def _has_space(self) -> bool:
        return len(self._items) < self._maxsize

    def _wait_for_space(self, block: bool, timeout: float | None) -> None:
        """Return when the queue has room (no switch after); raise ``Full`` otherwise."""
        _check_timeout(timeout)
        if not block or timeout == 0:
            raise Full
        hub = get_hub()
        self._callbacks = hub._callbacks
        _wait_turn(hub, self._putters, self._has_space, timeout, Full)

    # -- getting --------------------------------------------------------------
    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        """Remove and return the next item; while empty, wait, else raise ``Empty``."""
        # Take first, wait on the exception: a try block costs nothing until it
        # raises, where a test of the deque cost every get two bytecodes (4%
        # of a put/get pair, measured).  The wait is outside the except clause,
        # so that ``Empty`` does not come chained to the IndexError.
        try:
            item: _T = self._items.popleft()
        except IndexError:
            pass
        else:
            if self._putters:
                self._callbacks.append((resume, self._putters.popleft()))
            return item
        self._wait_for_item(block, timeout)
        item = self._items.popleft()
        if self._putters:
            self._callbacks.append((resume, self._putters.popleft()))
        return item

    def get_nowait(self) -> _T:
        """Remove and return the next item or raise ``Empty``; never blocks."""
        return self.get(False)

    #: Where the next item ``get`` returns sits in ``_items``: the front (the
    #: heap's smallest for ``PriorityQueue``), the back for ``LifoQueue``.
    _next_index = 0

    def peek(self, block: bool = True, timeout: float | None = None) -> _T:
        """Return the next item ``get`` would return, leaving it in the queue
        (gevent's ``peek``); while empty, wait, else raise ``Empty``."""
        if not self._items:
            self._wait_for_item(block, timeout)
            # The wait took a getter's turn without taking the item: pass the
            # turn on, or a getter queued behind this peek sleeps beside an item.
            if self._getters:
                self._callbacks.append((resume, self._getters.popleft()))
        item: _T = self._items[self._next_index]
        return item

    def peek_nowait(self) -> _T:
        """The next item, left in the queue, or ``Empty``; never blocks."""
        return self.peek(False)

    def _has_item(self) -> bool:
        return bool(self._items)

    def _wait_for_item(self, block: bool, timeout: float | None) -> None:
        """Return when the queue has an item (no switch after); raise ``Empty`` otherwise."""
        _check_timeout(timeout)
        if not block or timeout == 0:
            raise Empty
        hub = get_hub()
        self._callbacks = hub._callbacks
        _wait_turn(hub, self._getters, self._has_item, timeout, Empty)

    # -- iteration ------------------------------------------------------------
    def __iter__(self) -> Iterator[_T]:
        return self

    def __next__(self) -> _T:
        item = self.get()
        if item is StopIteration:
            raise StopIteration
        return item


class SimpleQueue(Queue[_T]):
    """An unbounded FIFO queue with the interface of ``queue.SimpleQueue``."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()


class LifoQueue(Queue[_T]):
    """A queue that returns the most recently added item first."""

    __slots__ = ()
    _next_index = -1

    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        if not self._items:
            self._wait_for_item(block, timeout)
        item: _T = self._items.pop()
        if self._putters:
            self._callbacks.append((resume, self._putters.popleft()))
        return item


class PriorityQueue(Queue[_T]):
    """A queue that returns the smallest item first (``heapq`` order).

    Items must be comparable; ``(priority, data)`` tuples are the usual form.
    """

    __slots__ = ()

    def __init__(self, maxsize: int | None = None) -> None:
        super().__init__(maxsize)
        self._items = []

    def put(self, item: _T, block: bool = True, timeout: float | None = None) -> None:
        items = self._items
        maxsize = self._maxsize
        if maxsize and len(items) >= maxsize:
            self._wait_for_space(block, timeout)
        heapq.heappush(items, item)
        if self._getters:
            self._callbacks.append((resume, self._getters.popleft()))

    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        items = self._items
        if not items:
            self._wait_for_item(block, timeout)
        item: _T = heapq.heappop(items)
        if self._putters:
            self._callbacks.append((resume, self._putters.popleft()))
        return item


class JoinableQueue(Queue[_T]):
    """A FIFO queue that counts unfinished tasks, like ``queue.Queue``.

    Every ``put`` adds one; ``task_done()`` removes one; ``join()`` waits until
    none are left.
    """

    __slots__ = ("_joiners", "_unfinished")

    def __init__(self, maxsize: int | None = None) -> None:
        super().__init__(maxsize)
        self._unfinished = 0
        self._joiners: deque[list[Any]] = deque()

    @property
    def unfinished_tasks(self) -> int:
        """Items put and not yet marked done with ``task_done()``."""
        return self._unfinished

    def put(self, item: _T, block: bool = True, timeout: float | None = None) -> None:
        Queue.put(self, item, block, timeout)
        self._unfinished += 1

    def task_done(self) -> None:
        """Mark one item got earlier as processed; wakes ``join()`` at zero.

        Raises ValueError when called more times than items were put.
        """
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if not self._unfinished and self._joiners:
            callbacks = self._callbacks
            joiners = self._joiners
            while joiners:
                callbacks.append((resume, joiners.popleft()))

    def _all_done(self) -> bool:
        return not self._unfinished

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every item put has been marked done; False on timeout."""
        if not self._unfinished:
            return True
        _check_timeout(timeout)
        hub = get_hub()
        self._callbacks = hub._callbacks
        return _wait_turn(hub, self._joiners, self._all_done, timeout, None, wake_all=True)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} unfinished_tasks={self._unfinished}>"


class Channel(Generic[_T]):
    """A queue of size zero: ``put`` waits until a getter takes the item.

    ``put_nowait`` succeeds only when a getter is already waiting; ``get_nowait``
    only when a putter is.  ``balance`` is putters minus getters.
    """

    __slots__ = ("__weakref__", "_callbacks", "_getters", "_putters")

    def __init__(self) -> None:
        self._getters: deque[list[Any]] = deque()
        # (token, item) pairs; the token is empty for a put_nowait offer, which
        # has nobody to resume.
        self._putters: deque[tuple[list[Any], _T]] = deque()
        self._callbacks: Any = None

    @property
    def getters(self) -> int:
        return len(self._getters)

    @property
    def putters(self) -> int:
        return len(self._putters)

    @property
    def balance(self) -> int:
        """Waiting putters minus waiting getters."""
        return len(self._putters) - len(self._getters)

    def qsize(self) -> int:
        return 0

    def empty(self) -> bool:
        return True

    def full(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<Channel getters={len(self._getters)} putters={len(self._putters)}>"

    def put(self, item: _T, block: bool = True, timeout: float | None = None) -> None:
        """Offer ``item`` and wait until a getter takes it; ``Full`` on timeout."""
        _check_timeout(timeout)
        getters = self._getters
        putters = self._putters
        if not block or timeout == 0:
            if not getters:
                raise Full
            # A getter waits: the offer stays in line until it runs and takes it.
            putters.append(([], item))
            self._callbacks.append((resume, getters.popleft()))
            return
        hub = get_hub()
        callbacks = self._callbacks = hub._callbacks
        glet = getcurrent()
        token = [glet]
        entry = (token, item)
        putters.append(entry)
        if getters:
            callbacks.append((resume, getters.popleft()))
        timer = None if timeout is None else hub.loop.call_later(timeout, glet.switch, _TIMED_OUT)
        try:
            result = hub.switch()
        except BaseException:
            if not _remove_entry(putters, entry):
                token.clear()  # taken, then interrupted: the item was delivered
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if result is _TIMED_OUT:
            if _remove_entry(putters, entry):
                raise Full
            token.clear()  # a getter took it just before the deadline: success

    def put_nowait(self, item: _T) -> None:
        self.put(item, False)

    def _has_offer(self) -> bool:
        return bool(self._putters)

    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        """Take an item from the first waiting putter; wait for one, else ``Empty``."""
        putters = self._putters
        if not putters:
            _check_timeout(timeout)
            if not block or timeout == 0:
                raise Empty
            hub = get_hub()
            self._callbacks = hub._callbacks
            _wait_turn(hub, self._getters, self._has_offer, timeout, Empty)
        token, item = putters.popleft()
        if token:
            self._callbacks.append((resume, token))
        return item

    def get_nowait(self) -> _T:
        return self.get(False)

    def __iter__(self) -> Iterator[_T]:
        return self

    def __next__(self) -> _T:
        item = self.get()
        if item is StopIteration:
            raise StopIteration
        return item
