"""greenpatch: cooperative blocking code on a libev hub.

The public API.  Importing this module creates nothing (no hub, no loop): the
hub of a thread is made on first use.
"""

from greenpatch.hub import (
    BlockingSwitchOutError,
    ConcurrentObjectUseError,
    Greenlet,
    GreenletExit,
    Hub,
    Loop,
    LoopExit,
    Timeout,
    Waiter,
    get_hub,
    getcurrent_task,
    iwait,
    joinall,
    killall,
    sleep,
    spawn,
    spawn_later,
    wait,
    wait_read,
    wait_write,
    with_timeout,
)

from greenpatch.patcher import is_patched, original, patch, patch_all, patched

getcurrent = getcurrent_task

__version__ = "0.1.0"

__all__ = [
    "BlockingSwitchOutError",
    "ConcurrentObjectUseError",
    "Greenlet",
    "GreenletExit",
    "Hub",
    "Loop",
    "LoopExit",
    "Timeout",
    "Waiter",
    "__version__",
    "get_hub",
    "getcurrent",
    "is_patched",
    "iwait",
    "joinall",
    "killall",
    "original",
    "patch",
    "patch_all",
    "patched",
    "sleep",
    "spawn",
    "spawn_later",
    "wait",
    "wait_read",
    "wait_write",
    "with_timeout",
]
