"""The hub room: the libev loop, the per-thread hub greenlet, tasks and timeouts.

Nothing here imports the patcher, the harness or the reports (a test checks).
"""

from greenpatch.hub.greenlet import (
    Greenlet,
    iwait,
    joinall,
    killall,
    spawn,
    spawn_later,
    wait,
)
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
    wait_read,
    wait_write,
)
from greenpatch.hub.loop import Loop, TimerHandle, WatcherClosedError
from greenpatch.hub.timeout import Timeout, with_timeout

__all__ = [
    "BlockingSwitchOutError",
    "ConcurrentObjectUseError",
    "Greenlet",
    "GreenletExit",
    "Hub",
    "Loop",
    "LoopExit",
    "Timeout",
    "TimerHandle",
    "Waiter",
    "WatcherClosedError",
    "get_hub",
    "get_hub_if_exists",
    "getcurrent_task",
    "iwait",
    "joinall",
    "killall",
    "sleep",
    "spawn",
    "spawn_later",
    "wait",
    "wait_read",
    "wait_write",
    "with_timeout",
]
