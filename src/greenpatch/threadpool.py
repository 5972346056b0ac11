"""``greenpatch.threadpool``: worker threads for calls that cannot yield, as ``gevent.threadpool``.

    from greenpatch.threadpool import ThreadedConnection, blocking, run_in_thread

``ThreadPool`` and ``get_threadpool`` are the hub's (``hub/threadpool.py``);
``run_in_thread``, ``blocking`` and ``ThreadedConnection`` run a C client's
blocking calls there while the calling greenlet waits cooperatively
(``hub/offload.py``, which says what each one guarantees; docs/c-clients.md is
the user's page).  Names only: no second implementation.
"""

from __future__ import annotations

from typing import Any

from greenpatch.hub.offload import ThreadedConnection, blocking, run_in_thread
from greenpatch.hub.threadpool import ThreadPool, get_threadpool

__all__ = [
    "ThreadPool",
    "ThreadPoolExecutor",  # noqa: F822 - lazily, by __getattr__
    "ThreadedConnection",
    "blocking",
    "get_threadpool",
    "run_in_thread",
]


def __getattr__(name: str) -> Any:
    # gevent.threadpool.ThreadPoolExecutor; loaded on first use because
    # concurrent.futures (and logging with it) is not part of the light core.
    if name == "ThreadPoolExecutor":
        from greenpatch.hub.executor import ThreadPoolExecutor

        return ThreadPoolExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
