"""What the hubs of one process share: libev's default loop, fork bookkeeping, frame slabs.

A hub is per OS thread (``hub.py``); these are per process:

* libev's default loop (the only one that can watch children), which outlives
  the hub that ran it: a main hub that is destroyed, or whose thread a fork
  left behind, hands it to the next main hub (``orphan_default_loop`` /
  ``adopt_default_loop``), since only one ``Loop`` may ever wrap it;
* the threads a fork left behind, which ``_thread._count()`` still counts in
  the child (``other_thread_count``);
* the slabs that serve new greenlets' frame stacks (``slab_frame_stacks``).

Nothing here knows the ``Hub`` class: ``hub.py`` calls in.
"""

from __future__ import annotations

import sys
from _thread import _count as _started_thread_count
from typing import TYPE_CHECKING

import greenpatch.hub.loop as _loop_module
from greenpatch.hub._libev import lib

if TYPE_CHECKING:
    from greenpatch.hub.loop import Loop

__all__ = [
    "adopt_default_loop",
    "count_threads_lost_in_fork",
    "hand_on_default_loop_after_fork",
    "orphan_default_loop",
    "other_thread_count",
    "slab_frame_stacks",
]

#: The default loop while no hub runs it (its hub was destroyed, or lived in a
#: thread that a fork left behind); the next hub of the main thread adopts it.
#: Only one ``Loop`` may wrap libev's default loop, so it cannot simply be re-made.
_orphaned_default_loop: Loop | None = None


def orphan_default_loop(loop: Loop) -> None:
    """Keep the default ``loop``, its waits dropped, for the next main hub."""
    global _orphaned_default_loop
    loop.abandon_waits()
    _orphaned_default_loop = loop


def adopt_default_loop() -> Loop | None:
    """The default loop a previous main hub left, if any (taken: asked once)."""
    global _orphaned_default_loop
    loop, _orphaned_default_loop = _orphaned_default_loop, None
    if loop is None or loop.closed:
        return None
    return loop


#: Threads ``_thread._count()`` still counts in a forked child although they did
#: not survive the fork (CPython does not adjust the count; the forking thread,
#: now the child's main thread, is counted too).
_threads_lost_in_fork = 0


def other_thread_count() -> int:
    """How many real OS threads besides the main one are running.

    ``_thread._count()`` (threads started through ``_thread``, so the green
    "threads" of a patched ``threading`` are not counted), less those a fork left
    behind.  Only known once a hub existed before the fork (its fork hook counts
    them); a child forked before any hub existed keeps CPython's figure.
    """
    return _started_thread_count() - _threads_lost_in_fork


def count_threads_lost_in_fork() -> None:
    """In a forked child: every thread counted so far stayed in the parent."""
    global _threads_lost_in_fork
    _threads_lost_in_fork = _started_thread_count()


def hand_on_default_loop_after_fork(own_loop: Loop | None) -> None:
    """In a forked child: re-initialise the default loop if no hub here runs it.

    Forked from a thread other than the main one, the main thread and its hub do
    not exist in the child, but their ``Loop`` still wraps libev's default loop
    (and, in the child, the forking thread *is* the main thread).  The default
    loop is handed on, re-initialised, instead of leaving ``get_hub()`` unable to
    make a main hub ("default loop is already wrapped").  ``own_loop``: the loop
    of the forking thread's hub, already re-initialised (or None).
    """
    ref = _loop_module._default_owner
    default = ref() if ref is not None else None
    if default is None or default.closed or own_loop is default:
        return
    default.reinit()
    if _orphaned_default_loop is not default:
        orphan_default_loop(default)


#: Whether ``slab_frame_stacks`` has something to do: CPython 3.11+ (where each
#: greenlet gets a data stack of its own) with a GIL.  Free-threaded builds keep
#: their allocator: the slabs are locked, but untried there.
_frame_stacks_pending = (
    sys.implementation.name == "cpython"
    and sys.version_info >= (3, 11)
    and getattr(sys, "_is_gil_enabled", lambda: True)()
)


def slab_frame_stacks() -> None:
    """Serve new greenlets' frame stacks from slabs (once per process; the hub calls it).

    On CPython 3.11+ a greenlet's first frame gets a 16 KiB data-stack chunk
    that CPython maps for it and unmaps when the greenlet ends: two system
    calls and a page fault per greenlet, most of the cost of creating one.
    The C glue takes over chunks of that size from 1 MiB slabs that stay
    mapped (see "Frame stacks of new greenlets" in ``_libev_build.py``).
    """
    global _frame_stacks_pending
    if _frame_stacks_pending:
        _frame_stacks_pending = False
        lib.gp_stack_chunks_install()
