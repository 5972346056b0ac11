"""``greenpatch.queue``: greenlet queues, as ``gevent.queue``.

``Empty`` and ``Full`` are the standard library's exceptions (so ``except
queue.Empty`` catches ours too).  The queues are the hub's, gevent's
``peek``/``peek_nowait`` included: one implementation, under gevent's names.
"""

from __future__ import annotations

from queue import Empty, Full

from greenpatch.hub.queue import (
    Channel,
    JoinableQueue,
    LifoQueue,
    PriorityQueue,
    Queue,
    SimpleQueue,
)

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
