"""The hub room: the libev loop, the per-thread hub greenlet, tasks and timeouts.

Nothing here imports the patcher, the harness or the reports (a test checks).
"""

from typing import Any

from greenpatch.hub.event import AsyncResult, Event
from greenpatch.hub.greenlet import Greenlet, spawn, spawn_later
from greenpatch.hub.hub import (
    BlockingSwitchOutError,
    ConcurrentObjectUseError,
    GreenletExit,
    Hub,
    LoopExit,
    Waiter,
    get_hub,
    get_hub_if_exists,
    getcurrent_task,
    sleep,
)
from greenpatch.hub.io import cancel_fd_waits, wait_read, wait_write
from greenpatch.hub.locks import BoundedSemaphore, Lock, RLock, Semaphore
from greenpatch.hub.loop import Loop, TimerHandle, WatcherClosedError
from greenpatch.hub.pool import Group, Pool, PoolFull
from greenpatch.hub.queue import (
    Channel,
    JoinableQueue,
    LifoQueue,
    PriorityQueue,
    Queue,
    SimpleQueue,
)
from greenpatch.hub.signal import signal_handler
from greenpatch.hub.threadpool import ThreadPool, get_threadpool
from greenpatch.hub.timeout import Timeout, with_timeout
from greenpatch.hub.waiting import iwait, joinall, killall, wait


def __getattr__(name: str) -> Any:
    # Loaded on first use: the executor imports concurrent.futures (and logging).
    if name == "ThreadPoolExecutor":
        from greenpatch.hub.executor import ThreadPoolExecutor

        return ThreadPoolExecutor
    if name == "Resolver":
        from greenpatch.hub.resolver import Resolver

        return Resolver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncResult",
    "BlockingSwitchOutError",
    "BoundedSemaphore",
    "Channel",
    "ConcurrentObjectUseError",
    "Event",
    "Greenlet",
    "GreenletExit",
    "Group",
    "Hub",
    "JoinableQueue",
    "LifoQueue",
    "Lock",
    "Loop",
    "LoopExit",
    "Pool",
    "PoolFull",
    "PriorityQueue",
    "Queue",
    "RLock",
    "Resolver",
    "Semaphore",
    "SimpleQueue",
    "ThreadPool",
    "ThreadPoolExecutor",
    "Timeout",
    "TimerHandle",
    "Waiter",
    "WatcherClosedError",
    "cancel_fd_waits",
    "get_hub",
    "get_hub_if_exists",
    "get_threadpool",
    "getcurrent_task",
    "iwait",
    "joinall",
    "killall",
    "signal_handler",
    "sleep",
    "spawn",
    "spawn_later",
    "wait",
    "wait_read",
    "wait_write",
    "with_timeout",
]
