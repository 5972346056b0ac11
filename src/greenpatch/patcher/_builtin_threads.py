"""Built-in registry rows for the threading, _thread and queue twins.

Order matters within the ``thread`` flag: ``_thread`` first, then ``threading``,
whose ``after`` hook expects the green ``_thread`` names in place (it makes green
locks through ``threading.RLock()``, which builds on ``_CRLock``).  The ``queue``
and ``_queue`` rows are independent of both: their queues wait on hub locks or
park on the hub either way.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Callable

from greenpatch.patcher.registry import PatchSpec, Registry

_GREEN = "greenpatch.patcher.green."


def _green_hook(module: str, function: str) -> Callable[[ModuleType, Registry], None]:
    """An ``after`` hook that lives in a green module, imported only when it runs.

    Green modules are the only place that knows their target's internals, and
    importing them here would import them at ``import greenpatch``.
    """

    def hook(target: ModuleType, registry: Registry) -> None:
        getattr(importlib.import_module(_GREEN + module), function)(target, registry)

    hook.__qualname__ = f"{module}.{function}"
    return hook


THREAD_SPECS: tuple[PatchSpec, ...] = (
    PatchSpec(
        name="_thread",
        target="_thread",
        green=_GREEN + "_thread",
        flag="thread",
        description=(
            "start_new_thread spawns a greenlet task; allocate_lock/LockType/RLock are hub "
            "locks; get_ident names the task; _local is per task"
        ),
    ),
    PatchSpec(
        name="threading",
        target="threading",
        green=_GREEN + "threading",
        flag="thread",
        description=(
            "Thread runs as a greenlet task (start/join/is_alive/current_thread/enumerate); "
            "Lock, RLock, Condition, Event, Semaphore, Barrier, Timer and local are green; "
            "existing logging and concurrent.futures locks and the main thread are adopted"
        ),
        after=_green_hook("threading", "after_patch"),
    ),
    PatchSpec(
        name="queue",
        target="queue",
        green=_GREEN + "queue",
        flag="queue",
        description=(
            "Queue, LifoQueue, PriorityQueue on hub locks; a lock-free green SimpleQueue "
            "(what concurrent.futures' ThreadPoolExecutor waits on)"
        ),
        after=_green_hook("queue", "after_patch"),
    ),
    PatchSpec(
        name="_queue",
        target="_queue",
        green=_GREEN + "_queue",
        flag="queue",
        description=(
            "the C SimpleQueue, for code that imports it from _queue, is the green "
            "SimpleQueue of the queue patch"
        ),
    ),
)
