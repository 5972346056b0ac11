"""Green ``_thread``: "threads" are greenlet tasks, locks are hub locks.

Named after its target like ``socket.py`` (``import _thread`` in here is absolute).
The reasoning, and what was rejected, is in docs/patching-threads.md; in short:

* ``get_ident()`` names the running *task* (``id(task)``), never the worker
  greenlet that runs it, since workers are reused.  The main greenlet of an OS
  thread keeps the real OS ident, so whatever was recorded before patching
  (``main_thread().ident``, ``_active`` keys, owners of import locks) stays
  right without being rewritten.  ``get_native_id`` stays the original.
* ``LockType``/``RLock`` are hub locks with the stdlib's checks and reprs (an
  ``RLock`` is owned by a task); plain OS threads may use them too.
* ``start_new_thread`` (3.13: ``start_joinable_thread``) spawn a task that runs
  the function as ``_thread`` does: ``SystemExit`` ends it quietly, other
  errors, ``KeyboardInterrupt`` included, go to ``sys.unraisablehook`` and end
  only that thread; ``GreenletExit`` (a kill) goes on to the hub.
* What ``threading`` waits on to join -- the sentinel lock up to 3.12, a
  ``_ThreadHandle`` on 3.13 -- is released by a ``rawlink`` on the task, after
  all of its code (``threading``'s clean-up included) has run, as in CPython.
* ``_local`` is per task, and a task's values go when the task ends.
``interrupt_main`` is the green ``signal``'s: it also wakes a hub blocked in
the kernel, so the main greenlet's handler runs at once.

Kept as they are: ``stack_size``, ``TIMEOUT_MAX``, ``exit``
(it raises ``SystemExit``), ``get_native_id``, ``error``.
"""

from __future__ import annotations

import _thread as _stdlib
import sys
import types
import weakref
from typing import Any, Callable, TypeVar

from greenlet import GreenletExit
from greenlet import getcurrent as _raw_getcurrent
from greenlet import greenlet as RawGreenlet

from greenpatch.hub import Event, Greenlet, getcurrent_task
from greenpatch.hub import Lock as _HubLock
from greenpatch.hub import RLock as _HubRLock
from greenpatch.patcher.green.signal import interrupt_main as interrupt_main

__target__ = "_thread"

_C = TypeVar("_C")

#: 3.13 replaced the sentinel lock with thread handles.
_HAS_HANDLES = hasattr(_stdlib, "start_joinable_thread")

# The originals, bound before the registry swaps the module's names.
_real_get_ident: Callable[[], int] = _stdlib.get_ident
_real_count: Callable[[], int] = _stdlib._count
_real_set_sentinel: Any = getattr(_stdlib, "_set_sentinel", None)
_real_shutdown: Any = getattr(_stdlib, "_shutdown", None)
#: The C thread-local (per OS thread), for greenpatch's own per-thread state.
_real_local: Any = _stdlib._local

error = _stdlib.error
TIMEOUT_MAX: float = _stdlib.TIMEOUT_MAX

__implements__ = ["start_new_thread", "allocate_lock", "LockType", "RLock", "get_ident"]
__implements__ += ["_local", "_count", "interrupt_main"]
# Deprecated aliases and version-specific names: only those this Python has.
__implements__ += [name for name in ("start_new", "allocate") if hasattr(_stdlib, name)]
if _HAS_HANDLES:
    __implements__ += ["lock", "start_joinable_thread", "_ThreadHandle", "_make_thread_handle"]
    __implements__ += ["_shutdown"]
else:
    __implements__ += ["_set_sentinel"]


# -- identity ------------------------------------------------------------------
def get_ident() -> int:
    """The identity of the running task (see the module docstring)."""
    try:
        current = getcurrent_task()
    except RuntimeError:  # greenlet refuses late in interpreter shutdown
        return _real_get_ident()
    if isinstance(current, RawGreenlet) and current.parent is None:
        return _real_get_ident()
    return id(current)


def _root_greenlet() -> Any:
    """The main greenlet of the calling OS thread."""
    glet = _raw_getcurrent()
    while glet.parent is not None:
        glet = glet.parent
    return glet


def _call_when_finished(owner: Any, callback: Callable[[], None]) -> Any:
    """Call ``callback()`` once ``owner`` (a task or a raw greenlet) has ended.

    For a task: from a ``rawlink``, in the hub, after its code ran.  For a raw
    greenlet: from a weak reference, which the caller must keep alive, when it
    is freed (a foreign OS thread's main greenlet is, after the thread ends)."""
    if isinstance(owner, Greenlet):
        owner.rawlink(lambda _task: callback())
        return None
    return weakref.ref(owner, lambda _ref: callback())


# -- passing for the stdlib's types --------------------------------------------
# Code looks at the class of what ``threading`` gave it: trio asserts that its
# ``threading.RLock()`` is ``_thread``'s (the signal-safe C RLock, not
# ``threading._PyRLock``), reprs and error messages print ``_thread.lock``, and
# pickling must fail as for the C types, never pickle a hub lock's innards (the
# greenlets parked on it).  So our types carry the C types' module and names.
# They stay distinct classes from the originals: ``type()`` identity holds with
# what ``_thread``/``threading`` export after patching (``type(threading.Lock())
# is _thread.LockType``), not with a type captured before patching, which no
# renaming could give.  Rejected: subclassing the C types (``LockType`` cannot be
# subclassed) or a ``__class__`` property returning them (``type()`` would still
# tell, and ``isinstance`` checks against the green class would break).

#: Our classes that stand for a C type of ``_thread``: their "tp_name" carries the module.
_STDLIB_NAMED: set[type] = set()


def _stdlib_named(name: str) -> Callable[[type[_C]], type[_C]]:
    """Give the decorated class the module and name of ``_thread.<name>``."""

    def rename(cls: type[_C]) -> type[_C]:
        cls.__module__ = __target__
        cls.__name__ = cls.__qualname__ = name
        _STDLIB_NAMED.add(cls)
        return cls

    return rename


def _cannot_pickle(self: object, protocol: Any = None) -> Any:
    """``__reduce_ex__`` of a type that cannot be pickled or copied, in CPython's words."""
    cls = type(self)
    # A C type's name includes its module; a Python subclass's (of _local) does not.
    name = f"{cls.__module__}.{cls.__name__}" if cls in _STDLIB_NAMED else cls.__name__
    raise TypeError(f"cannot pickle {name!r} object")


# -- locks ---------------------------------------------------------------------
def _check_timeout(timeout: float | None) -> None:  # the hub lock checks the rest
    if timeout is not None and timeout != -1 and timeout > TIMEOUT_MAX:
        raise OverflowError("timeout value is too large")


@_stdlib_named("lock")
class LockType(_HubLock):
    """``_thread.lock``: a hub ``Lock`` with the stdlib's checks, aliases and repr."""

    __slots__ = ()
    __reduce_ex__ = _cannot_pickle

    def __init_subclass__(cls, **kwargs: Any) -> None:
        raise TypeError("type '_thread.lock' is not an acceptable base type")

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        _check_timeout(timeout)
        return super().acquire(blocking, timeout)

    def locked(self) -> bool:
        """Whether the lock is held (the hub's answers "would acquire block", which
        stays true after a release promised the lock to a queued waiter; threading
        asserts ``not locked()`` right after releasing a sentinel others wait on)."""
        return self.counter == 0

    acquire_lock = acquire
    release_lock = _HubLock.release
    locked_lock = locked

    def __repr__(self) -> str:
        state = "locked" if self.locked() else "unlocked"
        return f"<{state} greenpatch _thread.lock object at {id(self):#x}>"


# The class itself, not a function: the C builtin does not bind as a method
# when stored on a class (``locktype = _thread.allocate_lock``), a function would.
allocate_lock = allocate = lock = LockType


def _finalizing() -> bool:
    """In an ``except RuntimeError``: pass if greenlet refused because the interpreter
    is shutting down (it will not name the running greenlet then, and ``logging``'s
    weakref callbacks still take its lock); nothing switches any more, so a lock
    has nothing to exclude.  Re-raise otherwise."""
    if not sys.is_finalizing():
        raise  # the RuntimeError being handled by our caller
    return True


@_stdlib_named("RLock")
class RLock(_HubRLock):
    """``_thread.RLock``: a re-entrant hub lock owned by the running task."""

    __slots__ = ()
    __reduce_ex__ = _cannot_pickle

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()  # the C class ignores arguments (3.13's threading warns about them)

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        _check_timeout(timeout)
        try:
            return super().acquire(blocking, timeout)
        except RuntimeError:
            return _finalizing()

    def __enter__(self) -> bool:
        try:
            return super().__enter__()
        except RuntimeError:
            return _finalizing()

    def release(self) -> None:
        try:
            super().release()
        except RuntimeError:
            _finalizing()

    def __repr__(self) -> str:
        owner, count = self._owner, self._count
        state, ident = ("unlocked", 0) if owner is None else ("locked", id(owner))
        where = f"at {id(self):#x}"
        return f"<{state} greenpatch _thread.RLock object owner={ident} count={count} {where}>"


# -- running a function as a green thread --------------------------------------
#: Idents of the green threads started here that are still running (``_count``).
_running: set[int] = set()


def _report_unraisable(function: Any, exc: BaseException) -> None:
    """What ``_thread`` does with an exception that ends a thread."""
    message, culprit = "Exception ignored in thread started by", function
    if sys.version_info >= (3, 13):  # the function moved into the message
        message, culprit = f"{message} {function!r}", None
    if sys.unraisablehook is not sys.__unraisablehook__:
        args = (type(exc), exc, exc.__traceback__, message, culprit)
        names = ("exc_type", "exc_value", "exc_traceback", "err_msg", "object")
        sys.unraisablehook(types.SimpleNamespace(**dict(zip(names, args))))
        return
    # The default hook takes only the C UnraisableHookArgs, which Python code
    # cannot build: print what it would print.
    import traceback

    sys.stderr.write(message + ("" if culprit is None else f": {culprit!r}") + "\n")
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


def _run_thread(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    ident = get_ident()
    _running.add(ident)
    try:
        function(*args, **kwargs)
    except SystemExit:
        pass
    except GreenletExit:
        raise
    except BaseException as exc:
        # KeyboardInterrupt too, as CPython's _thread: it ends this thread only.
        # (Passing it to the main greenlet took the whole program down for an
        # exception that code raised in a thread; routing a real Ctrl-C to the
        # main thread is the signal handler's business, not the thread's.)
        _report_unraisable(function, exc)
    finally:
        _running.discard(ident)


def start_new_thread(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None = None
) -> int:
    """Run ``function(*args, **kwargs)`` in a new greenlet task; return its ident."""
    if not callable(function):
        raise TypeError("first arg must be callable")
    if not isinstance(args, tuple):
        raise TypeError("2nd arg must be a tuple")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError("optional 3rd arg must be a dictionary")
    task = Greenlet(_run_thread, function, args, kwargs or {})
    task.start()
    return id(task)


start_new = start_new_thread


def _count() -> int:
    """Green threads started here and still running, plus real ones."""
    # Minus greenpatch's own pool workers (getaddrinfo...): they are not the
    # program's threads, and code that waits for its threads to be gone
    # (CPython's threading_helper, leak checks) would wait out their idle timeout.
    from greenpatch.hub.threadpool import _pools

    internal = sum(pool._threads for pool in list(_pools))
    return len(_running) + max(_real_count() - internal, 0)


# -- up to 3.12: the sentinel lock ---------------------------------------------
def _set_sentinel() -> Any:
    """A lock released when the calling task ends, as CPython's is when the thread
    state goes (``Thread.join`` waits on it).  Outside a task: the original."""
    task = getcurrent_task()
    if not isinstance(task, Greenlet):
        return _real_set_sentinel()
    sentinel = LockType()
    _call_when_finished(task, lambda: sentinel.release() if sentinel.locked() else None)
    return sentinel


# -- 3.13: thread handles ------------------------------------------------------
#: Handles of running non-daemon green threads: ``_shutdown`` joins them.
_non_daemon_handles: set[_ThreadHandle] = set()
#: Every bound handle not done yet (the green threading's fork hook marks them done).
_live_handles: weakref.WeakSet[_ThreadHandle] = weakref.WeakSet()


@_stdlib_named("_ThreadHandle")
class _ThreadHandle:
    """Green ``_thread._ThreadHandle``: ``join``, ``is_done``, ``_set_done``, ``ident``."""

    __slots__ = ("__weakref__", "_done", "_finalizer", "_ident", "_owner")
    __reduce_ex__ = _cannot_pickle

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Like the C class, accept and ignore any arguments.
        self._ident: int | None = None
        self._owner: Any = None  # a weak reference to the task or greenlet, once bound
        self._done = Event()
        self._finalizer: Any = None

    def _bind(self, owner: Any, ident: int) -> None:
        self._owner = weakref.ref(owner)
        self._ident = ident
        self._finalizer = _call_when_finished(owner, self._finish)
        _live_handles.add(self)

    @property
    def ident(self) -> int | None:
        return self._ident

    def is_done(self) -> bool:
        return self._done.is_set()

    def _set_done(self) -> None:  # threading._shutdown does it for the main thread
        if self._owner is None:
            raise RuntimeError("thread not started")
        self._finish()

    def _finish(self) -> None:
        self._done.set()
        _non_daemon_handles.discard(self)
        _live_handles.discard(self)

    def join(self, timeout: float | None = None) -> None:
        if timeout is not None and timeout < 0:
            timeout = None  # -1 is "forever" (3.14's default); threading clamps the rest
        if self._owner is None:
            raise RuntimeError("thread not started")
        if not self._done.is_set() and self._owner() is getcurrent_task():
            raise RuntimeError("Cannot join current thread")
        self._done.wait(timeout)


def start_joinable_thread(
    function: Callable[..., Any], handle: _ThreadHandle | None = None, daemon: bool = True
) -> _ThreadHandle:
    """3.13's thread start: run ``function()`` in a task; return a handle to join it."""
    if not callable(function):
        raise TypeError("thread function must be callable")
    if handle is None:
        handle = _ThreadHandle()
    elif not isinstance(handle, _ThreadHandle):
        raise TypeError(f"expected a green _thread._ThreadHandle, got {type(handle).__name__}")
    elif handle._owner is not None:
        raise RuntimeError("thread already started")
    task = Greenlet(_run_thread, function, (), {})
    handle._bind(task, id(task))
    if not daemon:
        _non_daemon_handles.add(handle)
    task.start()
    return handle


def _make_thread_handle(ident: int) -> _ThreadHandle:
    """A handle for the running task, done when it ends (threading's dummy threads)."""
    handle = _ThreadHandle()
    handle._bind(getcurrent_task(), ident)
    return handle


def _shutdown() -> None:
    """Wait for the non-daemon green threads, then for the real ones.

    Loops because a thread may start others while we wait.  A thread that can
    never finish makes the hub raise ``LoopExit`` here; ``threading._shutdown``
    (the green one) reports that instead of hanging.
    """
    while True:
        pending = [handle for handle in list(_non_daemon_handles) if not handle.is_done()]
        if not pending:
            break
        for handle in pending:
            handle.join()
    if _real_shutdown is not None:
        _real_shutdown()


# -- thread-local data ---------------------------------------------------------
_MISSING: Any = object()


def _lookup(cls: type, name: str) -> Any:
    for klass in cls.__mro__:
        value = klass.__dict__.get(name, _MISSING)
        if value is not _MISSING:
            return value
    return _MISSING


def _is_data_descriptor(attr: Any) -> bool:
    kind = type(attr)
    return hasattr(kind, "__set__") or hasattr(kind, "__delete__")


class _LocalImpl:
    """The per-task dicts of one ``local``: ident -> (weak ref to the task, dict)."""

    __slots__ = ("__weakref__", "args", "dicts")

    def __init__(self, args: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
        self.args = args
        self.dicts: dict[int, tuple[Any, dict[str, Any]]] = {}

    def create(self, owner: Any) -> dict[str, Any]:
        """A new dict for ``owner``, forgotten when it ends.  The callback knows the
        entry by its weak reference, not by the dict: a long task keeps no data alive
        for locals that were dropped."""
        key, impl_ref = id(owner), weakref.ref(self)
        ref: list[Any] = []

        def forget() -> None:
            impl = impl_ref()
            if impl is not None and ref and impl.dicts.get(key, (None,))[0] is ref[0]:
                del impl.dicts[key]

        # A raw greenlet's callback is a weak reference that must stay alive: use it.
        ref.append(_call_when_finished(owner, forget) or weakref.ref(owner))
        data: dict[str, Any] = {}
        self.dicts[key] = (ref[0], data)
        return data


@_stdlib_named("_local")
class _local:
    """``threading.local`` with one dict per task (not per worker greenlet).

    Attribute access is done by hand, in ``object.__getattribute__``'s order
    (data descriptors, the task's dict, other class attributes).  Rejected:
    ``_threading_local``'s swap of ``__dict__`` under a lock -- held across a
    descriptor that switches, it serializes every task; without it, it races
    with other OS threads.
    """

    __slots__ = ("__weakref__", "_greenpatch_local_impl")
    __reduce_ex__ = _cannot_pickle

    def __new__(cls, *args: Any, **kwargs: Any) -> _local:
        if (args or kwargs) and cls.__init__ is object.__init__:
            raise TypeError("Initialization arguments are not supported")
        self = object.__new__(cls)
        impl = _LocalImpl((args, kwargs))
        object.__setattr__(self, "_greenpatch_local_impl", impl)
        impl.create(getcurrent_task())  # Python calls __init__ for the creating task
        return self

    def __getattribute__(self, name: str) -> Any:
        # _local_dict, inlined for the common case: this runs on every read.
        impl = _get_impl(self)
        owner = getcurrent_task()
        entry = impl.dicts.get(id(owner))
        if entry is not None and entry[0]() is owner:
            data = entry[1]
        else:
            data = _local_dict(self)
        cls = type(self)
        if cls is _local:  # no subclass: the class attributes are known (and never data)
            if name in data and name not in _LOCAL_DATA_DESCRIPTORS:
                return data[name]
            attr = _LOCAL_ATTRIBUTES.get(name, _MISSING)
        else:
            if name == "__dict__":
                return data
            attr = _lookup(cls, name)
        if attr is not _MISSING and _is_data_descriptor(attr):
            return type(attr).__get__(attr, self, cls)
        if name == "__dict__":
            return data
        try:
            return data[name]
        except KeyError:
            pass
        if attr is not _MISSING:
            get = getattr(type(attr), "__get__", None)
            return attr if get is None else get(attr, self, cls)
        raise AttributeError(f"{cls.__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        data, attr = _for_writing(self, name)
        if attr is not _MISSING and hasattr(type(attr), "__set__"):
            type(attr).__set__(attr, self, value)
        else:
            data[name] = value

    def __delattr__(self, name: str) -> None:
        data, attr = _for_writing(self, name)
        if attr is not _MISSING and hasattr(type(attr), "__delete__"):
            type(attr).__delete__(attr, self)
        elif data.pop(name, _MISSING) is _MISSING:
            raise AttributeError(name)


#: Reads the impl slot without going through our own ``__getattribute__``.
_get_impl: Callable[[_local], _LocalImpl] = _local.__dict__["_greenpatch_local_impl"].__get__
#: What ``_local`` instances find on their class, precomputed (walking the MRO
#: costs more than the rest of an attribute read); subclasses are looked up live.
_LOCAL_ATTRIBUTES = {
    name: attr for klass in reversed(_local.__mro__) for name, attr in vars(klass).items()
}
_LOCAL_DATA_DESCRIPTORS = frozenset(
    name for name, attr in _LOCAL_ATTRIBUTES.items() if _is_data_descriptor(attr)
)


def _for_writing(obj: _local, name: str) -> tuple[dict[str, Any], Any]:
    """The task's dict and the class attribute ``name``, for a set or delete."""
    if name == "__dict__":
        raise AttributeError(f"{type(obj).__name__!r} object attribute '__dict__' is read-only")
    cls = type(obj)
    attr = _LOCAL_ATTRIBUTES.get(name, _MISSING) if cls is _local else _lookup(cls, name)
    return _local_dict(obj), attr


def _local_dict(obj: _local) -> dict[str, Any]:
    """The running task's dict of ``obj``, made (and ``__init__`` run) on first use."""
    impl = _get_impl(obj)
    owner = getcurrent_task()
    entry = impl.dicts.get(id(owner))
    if entry is not None and entry[0]() is owner:
        return entry[1]
    data = impl.create(owner)
    init = type(obj).__init__
    if init is not object.__init__:
        args, kwargs = impl.args
        init(obj, *args, **kwargs)
    return data


# The functions we put in ``_thread`` say they are ``_thread``'s, as the C
# builtins do: ``threading.__all__`` is checked against the ``__module__`` of
# what ``threading`` holds (CPython's test__all__), and pickle finds a function
# by its module and name (it then finds ours, the patched name).  Tracebacks
# still show this file.
for _name in __implements__:
    _function = globals()[_name]
    if isinstance(_function, types.FunctionType):
        _function.__module__ = __target__
del _name, _function
