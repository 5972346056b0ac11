"""Green ``threading``: ``Thread`` runs as a greenlet task, on the stdlib's own code.

We do not rewrite ``Thread``.  ``threading.py`` reaches ``_thread`` only through
a handful of module-level names it bound at import (``_start_new_thread``,
``_allocate_lock``, ``get_ident``, ``_set_sentinel`` up to 3.12;
``_start_joinable_thread``, ``_ThreadHandle``, ``_make_thread_handle`` and
``_thread_shutdown`` on 3.13).  Swapping those for the green ``_thread`` twin
makes the stock ``Thread``, ``Condition``, ``Semaphore``, ``Event``, ``Barrier``
and ``Timer`` cooperative on every version, subclasses included: ``start()``
spawns a task and waits (cooperatively) for it to signal that it started;
``join()`` waits on a green sentinel lock or handle; ``current_thread()``,
``enumerate()`` and ``active_count()`` read ``_active``, keyed by the green
``get_ident()``.  ``threading.RLock`` stays the stdlib factory: it builds from
``_CRLock``, which we swap.  Rejected: a ``Thread`` subclass of our own (gevent
once did) -- code that subclassed ``threading.Thread`` before patching, or
checks ``type(t) is threading.Thread``, would see two classes.

Greenlets that were not started by ``threading`` (``greenpatch.spawn``) get a
``_DummyThread`` from ``current_thread()``, as foreign OS threads do; ours
leaves ``_active`` when its task ends, so idents reused later never find it.

What swapping names cannot do is done once, by ``after_patch`` (the registry's
``after`` hook): objects that already exist were made with the real primitives.
See its docstring for the list and why each one matters.

Exit
----
``threading._shutdown`` runs when the main module finishes.  It is the stdlib's,
wrapped: with the names swapped it joins non-daemon green threads by waiting on
green locks/handles, which runs the hub until they end.  If one can never end
(blocked on something nothing will set), the hub raises ``LoopExit`` in the main
greenlet; we report which threads were left and let the interpreter exit rather
than hang or print a traceback.
"""

from __future__ import annotations

import os
import sys
import threading as _stdlib
import time
from types import ModuleType
from typing import Any, Callable

import greenlet as _greenlet_mod
from greenlet import getcurrent as _raw_getcurrent

from greenpatch.hub import LoopExit, get_hub_if_exists, getcurrent_task
from greenpatch.hub import sleep as _hub_sleep
from greenpatch.patcher.green import _thread as _green_thread
from greenpatch.patcher.registry import Registry

__target__ = "threading"

_HAS_HANDLES = _green_thread._HAS_HANDLES

# typeshed leaves out the private names this module works with.
_threading: Any = _stdlib

# Originals bound before the swap.
_StdlibDummyThread: Any = _threading._DummyThread
_stdlib_shutdown: Callable[[], None] = _threading._shutdown

__implements__ = [
    "_allocate_lock",
    "Lock",
    "_CRLock",
    "get_ident",
    "local",
    "_DummyThread",
    "_shutdown",
]
if _HAS_HANDLES:
    __implements__ += [
        "_LockType",
        "_start_joinable_thread",
        "_ThreadHandle",
        "_make_thread_handle",
        "_thread_shutdown",
        "_thread_local_info",
    ]
else:
    __implements__ += ["_start_new_thread", "_set_sentinel"]

_allocate_lock = _green_thread.allocate_lock
# 3.13 made ``Lock`` the lock type itself; before it was ``_thread.allocate_lock``.
Lock: Any = _green_thread.LockType if _HAS_HANDLES else _green_thread.allocate_lock
_LockType = _green_thread.LockType
_CRLock = _green_thread.RLock
get_ident = _green_thread.get_ident
local = _green_thread._local
_set_sentinel = _green_thread._set_sentinel
_ThreadHandle = _green_thread._ThreadHandle
_make_thread_handle = _green_thread._make_thread_handle
_thread_shutdown = _green_thread._shutdown
# 3.13's _DummyThread parks a tracker in this thread-local; when the thread ends
# the tracker is freed and removes the dummy from _active.  A per-task local
# makes that happen per task instead of evicting the previous task's dummy.
# (Making it here needs no hub: a local's first dict is the importing greenlet's.)
_thread_local_info = _green_thread._local()


class _DummyThread(_StdlibDummyThread):  # type: ignore[misc]
    """What ``current_thread()`` returns in a task not started by ``threading``.

    Up to 3.12 the stdlib's dummies stay in ``_active`` forever (OS threads are
    few); tasks are many and short, and a later task can get the same ident, so
    ours removes itself when its task ends.
    """

    def __init__(self) -> None:
        super().__init__()
        ident = self._ident
        self._greenpatch_finalizer = _green_thread._call_when_finished(
            getcurrent_task(), lambda: _forget_dummy(ident, self)
        )


def _forget_dummy(ident: int, dummy: Any) -> None:
    active = _threading._active
    with _threading._active_limbo_lock:
        if active.get(ident) is dummy:
            del active[ident]


# -- starting ------------------------------------------------------------------
# ``Thread.start()`` starts the thread, then waits on ``self._started``, which
# the new thread sets in ``_bootstrap_inner`` before it calls ``run()``.  With
# OS threads the new thread then usually runs on first, for up to the switch
# interval (5 ms), holding the GIL; here it runs on until it blocks.  Code
# relies on the first (a test that starts a thread inside a ``mock.patch``
# block and leaves the block at once: the thread's first call must still see
# the mock -- redis-py's PubSubWorkerThread tests).  But a target that spins,
# polling an ``Event`` its starter will set (``t.start(); stop.set()``), would
# never give the starter back control: so a polling ``Event.is_set()`` yields
# now and then (``_polling_is_set``, installed by ``after_patch``).
# Rejected: the new task yielding once right after setting ``_started`` (the
# starter then ran first, always -- unlike CPython, where that is the rare
# case -- and the redis-py tests above hung); preempting a spinning task from
# a timer (a switch at any bytecode, inside greenpatch's own bookkeeping too).
#: A polling ``is_set()`` that answers False yields to the hub every this many calls.
IS_SET_YIELD_EVERY = 64
_unset_answers = 0


def _polling_is_set(self: Any) -> bool:
    """``threading.Event.is_set`` that lets other threads run while one polls it."""
    if self._flag:
        return True
    global _unset_answers
    _unset_answers += 1
    if _unset_answers >= IS_SET_YIELD_EVERY:
        _unset_answers = 0
        hub = get_hub_if_exists()
        if hub is not None and _raw_getcurrent() is not hub:
            hub.sleep(0)
            return bool(self._flag)
    return False


def _make_event_polling_cooperative(threading_mod: Any) -> None:
    """Step 9 of ``after_patch``: ``Event.is_set`` yields now and then (see above)."""
    event_class = threading_mod.Event
    if vars(event_class).get("is_set") is not _polling_is_set:
        event_class.is_set = _polling_is_set


def _start_new_thread(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
) -> int:
    """``threading``'s ``_start_new_thread`` (up to 3.12): the green one, see above."""
    return _green_thread.start_new_thread(function, args, kwargs)


def _start_joinable_thread(
    function: Callable[..., Any], handle: Any = None, daemon: bool = True
) -> Any:
    """``threading``'s ``_start_joinable_thread`` (3.13): the green one, see above."""
    return _green_thread.start_joinable_thread(function, handle, daemon)


def _shutdown() -> None:
    """``threading._shutdown``, made safe against green threads that never end."""
    try:
        _stdlib_shutdown()
    except LoopExit:
        left = [
            t.name
            for t in _stdlib.enumerate()
            if t is not _stdlib.main_thread() and not t.daemon and t.is_alive()
        ]
        sys.stderr.write(
            "greenpatch: at exit, non-daemon green threads could not finish because "
            f"nothing can wake them: {', '.join(left) or '(unknown)'}; exiting anyway.\n"
        )


# -- the after hook ------------------------------------------------------------
def after_patch(threading_mod: Any, registry: Registry) -> None:
    """Adopt what was made before patching (the registry's ``after`` hook).

    Each step replaces real locks (or real-lock-based objects) that could be
    held across a greenlet switch or waited on by a greenlet, which with the
    whole program in one OS thread means a deadlock of that thread:

    1. The main thread's sentinel (``_tstate_lock`` up to 3.12, ``_handle`` on
       3.13): a green thread's ``main_thread().join()`` would block the OS
       thread on it (or raise "Cannot join current thread" on 3.13).
    2. ``Thread`` objects created but not started: their ``_started`` Event is
       built on real locks and ``start()`` waits on it; 3.13 also gave them a C
       ``_ThreadHandle`` that our start function cannot use.
    3. Real threads still running: their ``join()`` would block the OS thread,
       so every greenlet, while waiting; they get a polling, cooperative join.
    4. ``logging._lock`` and the lock of every existing handler: held while a
       handler writes, which may be a green socket (SocketHandler,
       SysLogHandler) that switches; another greenlet logging meanwhile would
       re-enter the real RLock (same OS thread) or block on it.
    5. ``concurrent.futures.thread._global_shutdown_lock``: ``submit()`` holds it
       across ``Thread.start()``, which now switches; a second greenlet's
       ``submit()`` would then block the OS thread on it.
    6. Standard-library modules imported before patching that hold an
       original (``from _thread import RLock``): see ``_STDLIB_HOLDERS``.
       (Modules imported later get the green names by themselves; third-party
       holders are reported by ``diagnostics``.)
    7. asyncio's running-loop record (see "asyncio" below): set up now if
       ``asyncio`` is imported, else when it is.
    8. On 3.13, forks: see ``_after_fork_in_child``.
    9. ``Event.is_set``: a thread that polls an event yields now and then (see
       "starting" above).

    Left alone, on purpose: ``_active_limbo_lock`` and ``_shutdown_locks_lock``
    are held for a few bytecodes and never across a switch, and they are used by
    real threads started before patching; a real lock is cheaper and cannot
    deadlock there.  Import locks need nothing: the main greenlet keeps the OS
    thread's ident (see ``_thread.py``), so their recorded owners stay right.
    """
    _adopt_main_thread(threading_mod)
    _adopt_unstarted_threads(threading_mod)
    _cooperative_join_for_running_threads(threading_mod)
    _replace_logging_locks(threading_mod)
    _replace_futures_shutdown_lock(threading_mod)
    _make_event_polling_cooperative(threading_mod)
    _rebind_stdlib_holders(threading_mod)
    _follow_asyncio_loops()
    if _HAS_HANDLES:
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _after_fork_in_child() -> None:
    """In a forked child, mark the other green threads done, as 3.13's C code does
    for OS threads (``threading._after_fork`` relies on it; up to 3.12 it marks
    them stopped itself).  Their greenlets do exist in the child, as in gevent;
    ``threading`` just no longer lists or waits for them."""
    current = getcurrent_task()
    for handle in list(_green_thread._live_handles):
        owner = handle._owner() if handle._owner is not None else None
        if owner is not current:
            handle._finish()


def _adopt_main_thread(threading_mod: Any) -> None:
    main = threading_mod._main_thread
    if main.ident != _green_thread._real_get_ident():
        return  # patching from another OS thread: the main thread is not ours to wait on
    if _HAS_HANDLES:
        if not isinstance(main._handle, _ThreadHandle):
            handle = _ThreadHandle()
            handle._bind(_green_thread._root_greenlet(), main.ident)
            main._handle = handle
        return
    real = main._tstate_lock
    if real is None or isinstance(real, _LockType):
        return
    green = _LockType()
    green.acquire()
    # _shutdown() releases the main thread's lock and then waits on every lock
    # in _shutdown_locks; the real one would never be released, so it must go.
    with threading_mod._shutdown_locks_lock:
        threading_mod._shutdown_locks.discard(real)
    main._tstate_lock = green


def _adopt_unstarted_threads(threading_mod: Any) -> None:
    for thread in list(threading_mod._dangling):
        if thread._started.is_set():
            continue
        thread._started = threading_mod.Event()
        if _HAS_HANDLES and not isinstance(thread._handle, _ThreadHandle):
            thread._handle = _ThreadHandle()


def _cooperative_join_for_running_threads(threading_mod: Any) -> None:
    main = threading_mod._main_thread
    for thread in threading_mod.enumerate():
        if thread is main or isinstance(thread, _StdlibDummyThread) or not thread.is_alive():
            continue
        thread.join = _polling_join(thread, thread.join)


def _polling_join(thread: Any, stdlib_join: Callable[[float | None], None]) -> Any:
    """A ``join`` for a real thread that lets other greenlets run while it waits.

    A real thread's end is signalled by a real lock only; nothing can wake the
    hub for it, so we poll.  Outside a greenlet (no hub, or in the hub itself)
    the stdlib's join blocks as usual.
    """

    def join(timeout: float | None = None) -> None:
        hub = get_hub_if_exists()
        if hub is None or _raw_getcurrent() is hub or _stdlib.current_thread() is thread:
            stdlib_join(timeout)
            return
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while thread.is_alive():
            remaining = 0.01 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return
            _hub_sleep(min(0.01, remaining))

    return join


def _replace_logging_locks(threading_mod: Any) -> None:
    logging: Any = sys.modules.get("logging")
    if logging is None:
        return  # imported later, it makes its locks with the green RLock
    logging._lock = threading_mod.RLock()
    for ref in list(getattr(logging, "_handlerList", ())):
        handler = ref()
        if handler is not None and getattr(handler, "lock", None) is not None:
            handler.lock = threading_mod.RLock()


#: (module, name it holds, green object, why it matters).  Left alone on purpose:
#: ``_strptime._cache_lock`` (held for pure computation, never across a switch)
#: and ``_queue.SimpleQueue`` (the C module itself).
_STDLIB_HOLDERS: tuple[tuple[str, str, Any, str], ...] = (
    ("functools", "RLock", _CRLock, "cached_property (<= 3.11) and the pure-Python lru_cache"),
    ("reprlib", "get_ident", get_ident, "recursive_repr's guard is per thread: per task"),
    ("asyncio.base_futures", "get_ident", get_ident, "the same guard in future reprs"),
    ("tempfile", "_allocate_lock", _allocate_lock, "for locks it makes later"),
    ("multiprocessing.dummy", "Lock", Lock, "re-exported as the dummy Lock"),
)


def _rebind_stdlib_holders(threading_mod: Any) -> None:
    for module_name, name, green, _why in _STDLIB_HOLDERS:
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, name):
            setattr(module, name, green)
    tempfile: Any = sys.modules.get("tempfile")
    if tempfile is not None and hasattr(tempfile, "_once_lock"):
        # Held across gettempdir()'s probing of directories, file I/O that the
        # os twin may make cooperative: a second greenlet would block on it.
        tempfile._once_lock = _allocate_lock()


def _replace_futures_shutdown_lock(threading_mod: Any) -> None:
    futures_thread: Any = sys.modules.get("concurrent.futures.thread")
    if futures_thread is not None and hasattr(futures_thread, "_global_shutdown_lock"):
        # Its fork hooks keep the old lock; nobody else takes it, so they never block.
        futures_thread._global_shutdown_lock = threading_mod.Lock()


# -- asyncio -------------------------------------------------------------------
# asyncio keeps one "running loop" record per OS thread (in C: the thread state).
# Green threads share the OS thread, so a loop running in one green thread
# would be seen as running by all: a second ``asyncio.run()`` raises "cannot be
# called from a running event loop", and ``get_running_loop()``, ``Future()`` or
# ``current_task()`` in another greenlet would find the wrong loop.  Every loop
# sets that record through ``asyncio.events._set_running_loop`` (base_events
# calls it by attribute when ``run_forever`` starts and ends), so we wrap it to
# learn which greenlet runs which loop, and while any loop runs in an OS thread,
# a greenlet switch tracer puts the record of the greenlet being switched to in
# place.  The record is keyed by the raw greenlet: a task keeps its worker from
# start to end, and ``run_forever`` clears the record before the task ends.
#
# Rejected: replacing ``get_running_loop`` and friends with per-task functions
# (the C ``Future``, ``Task`` and ``current_task`` read the C record directly);
# a tracer installed for good (a Python call on every switch of every program,
# asyncio or not); importing asyncio at patch time to wrap it (it costs more
# than the whole patch).  So when asyncio is imported after patching, a
# one-shot ``sys.meta_path`` finder wraps the setter right after
# ``asyncio.events`` has been executed, before anything can call it.

#: raw greenlet -> the asyncio loop it runs (for all OS threads).
_running_loops: dict[Any, Any] = {}
#: Per OS thread: the tracer we installed (``tracer``), the one it chains to.
_trace_state: Any = _green_thread._real_local()
_wrapped_setters: set[int] = set()


def _follow_asyncio_loops() -> None:
    events = sys.modules.get("asyncio.events")
    if events is not None:
        _wrap_set_running_loop(events)
    elif not any(isinstance(finder, _AsyncioEventsFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AsyncioEventsFinder())


class _AsyncioEventsFinder:
    """Finds nothing; when ``asyncio.events`` is about to be loaded, arranges the wrap."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "asyncio.events":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # one shot, and not in our own way below
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        def exec_and_wrap(module: ModuleType) -> None:
            exec_module(module)
            _wrap_set_running_loop(module)

        # The loader instance is this module's alone (a new one per spec).
        loader.exec_module = exec_and_wrap
        return spec


def _wrap_set_running_loop(events: Any) -> None:
    original = events._set_running_loop
    if id(original) in _wrapped_setters:
        return

    def _set_running_loop(loop: Any) -> None:
        original(loop)
        glet = _raw_getcurrent()
        if loop is None:
            _running_loops.pop(glet, None)
        else:
            _running_loops[glet] = loop
        _update_tracer(original)

    _wrapped_setters.add(id(_set_running_loop))
    events._set_running_loop = _set_running_loop
    asyncio: Any = sys.modules.get("asyncio")
    if asyncio is not None and getattr(asyncio, "_set_running_loop", None) is original:
        asyncio._set_running_loop = _set_running_loop
    running = events._get_running_loop()
    if running is not None:  # patched from inside a running loop
        _set_running_loop(running)


def _update_tracer(set_record: Callable[[Any], None]) -> None:
    """Install the switch tracer in this OS thread while one of its greenlets runs a loop."""
    state = _trace_state
    tracer = getattr(state, "tracer", None)
    mine = _green_threads_of_this_thread_run_loops()
    if mine and tracer is None:
        previous = _greenlet_mod.gettrace()
        loops = _running_loops

        def trace(event: str, args: Any) -> None:
            if event == "switch" or event == "throw":
                set_record(loops.get(args[1]))
            if previous is not None:
                previous(event, args)

        state.tracer = trace
        state.previous = previous
        _greenlet_mod.settrace(trace)
    elif not mine and tracer is not None and _greenlet_mod.gettrace() is tracer:
        # (If someone installed a tracer after ours, ours stays, chained and idle.)
        _greenlet_mod.settrace(state.previous)
        state.tracer = None


def _green_threads_of_this_thread_run_loops() -> bool:
    root = _green_thread._root_greenlet()
    for glet in list(_running_loops):
        top = glet
        while top.parent is not None:
            top = top.parent
        if top is root:
            return True
    return False
