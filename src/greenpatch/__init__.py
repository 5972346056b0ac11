"""greenpatch: cooperative blocking code on a libev hub.

The public API.  Importing this module creates nothing (no hub, no loop): the
hub of a thread is made on first use.

PYTEST_DONT_REWRITE: greenpatch ships a pytest11 entry point (greenpatch_pytest),
so pytest marks this package for assertion rewriting; it is often imported
before pytest starts (``greenpatch run -m pytest``) and must not be rewritten.
"""

from typing import Any

from greenpatch.hub import (
    AsyncResult,
    BlockingSwitchOutError,
    BoundedSemaphore,
    Channel,
    ConcurrentObjectUseError,
    Event,
    Greenlet,
    GreenletExit,
    Group,
    Hub,
    JoinableQueue,
    LifoQueue,
    Lock,
    Loop,
    LoopExit,
    Pool,
    PoolFull,
    PriorityQueue,
    Queue,
    RLock,
    Semaphore,
    SimpleQueue,
    ThreadPool,
    Timeout,
    Waiter,
    cancel_fd_waits,
    get_hub,
    get_threadpool,
    getcurrent_task,
    iwait,
    joinall,
    killall,
    signal_handler,
    sleep,
    spawn,
    spawn_later,
    wait,
    wait_read,
    wait_write,
    with_timeout,
)
from greenpatch.hub.hub import idle, reinit
from greenpatch.hub.raw import kill, spawn_raw
from greenpatch.patcher import is_patched, original, patch, patch_all, patched

getcurrent = getcurrent_task


#: The gevent-shaped modules (``greenpatch.monkey``, ``greenpatch.queue``...),
#: imported on first attribute access so that ``import greenpatch`` stays light.
_GEVENT_MODULES = frozenset(
    {
        "event",
        "local",
        "lock",
        "monkey",
        "pool",
        "pywsgi",
        "queue",
        "select",
        "server",
        "signal",
        "socket",
        "subprocess",
        "threadpool",
    }
)


def __getattr__(name: str) -> Any:
    # gevent.fork: the green os.fork, loaded on first use (the light core).
    if name == "fork":
        from greenpatch.patcher.green.os import fork

        return fork
    if name in _GEVENT_MODULES:
        import importlib

        return importlib.import_module(f"greenpatch.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__version__ = "0.1.0"

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
    "Semaphore",
    "SimpleQueue",
    "ThreadPool",
    "Timeout",
    "Waiter",
    "__version__",
    "cancel_fd_waits",
    "fork",
    "get_hub",
    "get_threadpool",
    "getcurrent",
    "getcurrent_task",
    "idle",
    "is_patched",
    "iwait",
    "joinall",
    "kill",
    "killall",
    "original",
    "patch",
    "patch_all",
    "patched",
    "reinit",
    "signal_handler",
    "sleep",
    "spawn",
    "spawn_later",
    "spawn_raw",
    "wait",
    "wait_read",
    "wait_write",
    "with_timeout",
]
