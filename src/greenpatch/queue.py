"""``greenpatch.queue``: greenlet queues, as ``gevent.queue``.

``Empty`` and ``Full`` are the standard library's exceptions (so ``except
queue.Empty`` catches ours too).  The queues here add gevent's ``peek``.
"""

from __future__ import annotations

from queue import Empty, Full
from typing import Any, TypeVar

from greenpatch.hub import queue as _hub_queue
from greenpatch.hub.hub import resume
from greenpatch.hub.queue import Channel

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


class _Peek:
    """gevent's ``peek``: the next item ``get`` would return, left in the queue."""

    __slots__ = ()

    #: Where the next item sits in ``_items``: the front, except for LIFO.
    _next = 0

    def peek(self, block: bool = True, timeout: float | None = None) -> Any:
        """Return the next item without removing it; wait while empty (``Empty``
        after ``timeout``, or at once with ``block=False``)."""
        queue: Any = self
        if not queue._items:
            queue._wait_for_item(block, timeout)
        item = queue._items[self._next]
        # The wait took a getter's turn without taking the item: pass the turn
        # on, or a getter queued behind this peek would sleep beside an item.
        if queue._getters:
            queue._callbacks.append((resume, queue._getters.popleft()))
        return item

    def peek_nowait(self) -> Any:
        return self.peek(False)


class Queue(_Peek, _hub_queue.Queue[_T]):
    __slots__ = ()


class SimpleQueue(_Peek, _hub_queue.SimpleQueue[_T]):
    __slots__ = ()


class JoinableQueue(_Peek, _hub_queue.JoinableQueue[_T]):
    __slots__ = ()


class LifoQueue(_Peek, _hub_queue.LifoQueue[_T]):
    __slots__ = ()
    _next = -1


class PriorityQueue(_Peek, _hub_queue.PriorityQueue[_T]):
    __slots__ = ()
