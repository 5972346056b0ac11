"""The libev watchers: io, timer, signal, child, async, prepare, check, idle.

Every watcher owns its C struct (``ffi.new``) and starts with the shared C
callback ``gp_record`` (see ``_libev_build.py``); each ``start`` gives it a new
id, under which its loop keeps it alive while active and finds it again when
libev reports it ready.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from greenpatch.hub._libev import ffi, lib

if TYPE_CHECKING:
    from greenpatch.hub._libev import (
        EvAsyncPtr,
        EvCheckPtr,
        EvChildPtr,
        EvIdlePtr,
        EvPreparePtr,
        EvSignalPtr,
        EvTimerPtr,
        GpIoPtr,
    )
    from greenpatch.hub.loop import Loop

__all__ = [
    "READ",
    "WRITE",
    "AsyncWatcher",
    "CheckWatcher",
    "ChildWatcher",
    "IdleWatcher",
    "IoWatcher",
    "PrepareWatcher",
    "SignalWatcher",
    "TimerWatcher",
    "Watcher",
    "WatcherClosedError",
]

READ: int = lib.EV_READ
WRITE: int = lib.EV_WRITE
#: In a watcher's events: libev stopped it because its descriptor is bad.
EV_ERROR: int = lib.EV_ERROR


class WatcherClosedError(ValueError):
    """An operation was attempted on a watcher after ``close()``."""


class Watcher:
    """Base of the libev watchers.  ``start(callback, *args)``, ``stop()``, ``close()``.

    ``ref=False`` means an active watcher does not keep the loop alive by itself
    (libev's ``ev_unref`` after start).  A stopped watcher can be started again; a
    closed one raises ``WatcherClosedError``.

    ``process_wide=True`` says that the watcher serves the process rather than
    the hub that started it (a signal handler, a child watcher): when the
    default loop outlives its hub and passes to the next hub of the main thread
    (``Loop.abandon_waits``), such watchers stay active and every other one is
    stopped, so nothing fires into a hub that is gone.  Their callbacks must not
    hold on to a hub; they run in whichever hub runs the loop.
    """

    __slots__ = (
        "__weakref__",
        "_c",
        "_id",
        "_ref",
        "args",
        "callback",
        "loop",
        "process_wide",
        "waiter",
    )
    _ctype = ""
    #: The greenlets waiting on this watcher, as one-item token lists, for a
    #: wait queue (``io.IoWaitQueue``, whose slot this is); empty for the
    #: others.  ``Hub.switch`` reads it for the I/O hand-off.
    _waiters: Any = ()
    _start_fn: Callable[[Any, Any], None]
    _stop_fn: Callable[[Any, Any], None]

    def __init__(self, loop: Loop) -> None:
        loop._check_open()
        self.loop = loop
        self._c: Any = ffi.new(self._ctype)
        self._id = 0
        self._ref = True
        self.callback: Callable[..., Any] | None = None
        self.args: tuple[Any, ...] = ()
        # The greenlet blocked on this watcher, if any (set by Hub.wait, used by
        # Hub.cancel_wait).
        self.waiter: Any = None
        self.process_wide = False

    def _check(self) -> Any:
        c = self._c
        if c is None:
            raise WatcherClosedError(f"{self!r} is closed")
        if self.loop._ptr is None:
            raise WatcherClosedError(f"the loop of {self!r} was destroyed")
        return c

    def start(self, callback: Callable[..., Any], *args: Any) -> None:
        c = self._check()
        if self._id:
            self.stop()
        self.callback = callback
        self.args = args
        loop = self.loop
        self._id = watcher_id = next(loop._ids)
        lib.gp_set_id(c, watcher_id)
        loop._active[watcher_id] = self
        try:
            self._start_fn(loop._ev, c)
        except BaseException:
            del loop._active[watcher_id]
            self._id = 0
            self.callback = None
            self.args = ()
            raise
        if not self._ref:
            lib.ev_unref(loop._ev)

    def stop(self) -> None:
        if not self._id:
            return
        loop = self.loop
        del loop._active[self._id]
        self._id = 0
        self.callback = None
        self.args = ()
        if loop._ptr is None:
            return
        if not self._ref:
            lib.ev_ref(loop._ev)
        self._stop_fn(loop._ev, self._c)

    def close(self) -> None:
        """Stop and release the C struct; later operations raise."""
        if self._c is not None:
            self.stop()
            self._c = None

    @property
    def closed(self) -> bool:
        return self._c is None

    @property
    def active(self) -> bool:
        return bool(self._id)

    @property
    def pending(self) -> bool:
        return self._c is not None and bool(lib.gp_is_pending(self._c))

    @property
    def ref(self) -> bool:
        return self._ref

    @ref.setter
    def ref(self, value: bool) -> None:
        value = bool(value)
        if value == self._ref:
            return
        if self._id and self.loop._ptr is not None:
            if value:
                lib.ev_ref(self.loop._ev)
            else:
                lib.ev_unref(self.loop._ev)
        self._ref = value

    @property
    def priority(self) -> int:
        return int(lib.gp_priority(self._check()))

    @priority.setter
    def priority(self, value: int) -> None:
        if self._id:
            raise ValueError("cannot change the priority of an active watcher")
        lib.gp_set_priority(self._check(), int(value))

    def _fire(self, revents: int) -> None:
        callback = self.callback
        if callback is not None:
            callback(*self.args)

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        state = "closed" if self._c is None else ("active" if self._id else "stopped")
        extra = self._describe()
        return f"<{type(self).__name__}{' ' + extra if extra else ''} {state}>"


class IoWatcher(Watcher):
    """Watches a descriptor for reading and/or writing.

    A descriptor found closed when libev is about to register it (see
    ``_libev_build.py``) stops the watcher and fires it once more with ``error``
    set: the callback runs, as for readiness, and tells the two apart by
    ``error``.  Such a watcher may be started again (on a descriptor that is
    open by then).
    """

    __slots__ = ("error",)
    _ctype = "gp_io *"
    _c: GpIoPtr  # None once closed (see Watcher.close)
    _stop_fn = lib.gp_io_stop

    def __init__(self, loop: Loop, fd: int, events: int) -> None:
        if fd < 0:
            raise ValueError(f"invalid file descriptor {fd}")
        if not events or events & ~(READ | WRITE):
            raise ValueError(f"events must be READ, WRITE or both, not {events!r}")
        super().__init__(loop)
        self.error = False
        lib.gp_io_init(self._c, fd, events)

    @staticmethod
    def _start_fn(ev_loop: Any, c: Any) -> None:
        if lib.gp_io_start(ev_loop, c) < 0:
            raise MemoryError("no memory left to track an io watcher")

    def start(self, callback: Callable[..., Any], *args: Any) -> None:
        self.error = False
        super().start(callback, *args)

    def _fire(self, revents: int) -> None:
        if revents & EV_ERROR:
            # libev (or our check of closed descriptors) stopped it already;
            # say so on this side too, then let the callback see the error.
            self.error = True
            callback, args = self.callback, self.args
            self.stop()
            if callback is not None:
                callback(*args)
            return
        callback = self.callback
        if callback is not None:
            callback(*self.args)

    @property
    def fd(self) -> int:
        return int(self._check().io.fd)

    @property
    def events(self) -> int:
        return int(self._check().io.events)

    @events.setter
    def events(self, value: int) -> None:
        if self._id:
            raise ValueError("cannot change the events of an active io watcher")
        c = self._check()
        lib.gp_io_set(c, c.io.fd, value)

    def _describe(self) -> str:
        if self._c is None:
            return ""
        io = self._c.io
        mode = {READ: "r", WRITE: "w", READ | WRITE: "rw"}.get(io.events, "?")
        return f"fd={io.fd} {mode}{' error' if self.error else ''}"


class TimerWatcher(Watcher):
    __slots__ = ()
    _ctype = "ev_timer *"
    _c: EvTimerPtr  # None once closed (see Watcher.close)
    _start_fn = lib.ev_timer_start
    _stop_fn = lib.ev_timer_stop

    def __init__(self, loop: Loop, after: float, repeat: float = 0.0) -> None:
        if after < 0 or repeat < 0:
            raise ValueError("timer intervals must be >= 0")
        super().__init__(loop)
        lib.gp_timer_init(self._c, after, repeat)

    def _fire(self, revents: int) -> None:
        # libev stops a non-repeating timer before calling back; mirror that.
        callback, args = self.callback, self.args
        if not self._c.repeat:
            self.stop()
        if callback is not None:
            callback(*args)

    def again(self, callback: Callable[..., Any] | None = None, *args: Any) -> None:
        """Restart from now (``ev_timer_again``): the repeat interval, or after."""
        c = self._check()
        if callback is not None:
            self.callback, self.args = callback, args
        if self.callback is None:
            raise ValueError("again() needs a callback the first time")
        if not self._id:
            self.start(self.callback, *self.args)
        else:
            lib.ev_timer_again(self.loop._ev, c)

    def set(self, after: float, repeat: float = 0.0) -> None:
        if self._id:
            raise ValueError("cannot reconfigure an active timer; stop() it first")
        lib.gp_timer_set(self._check(), after, repeat)

    @property
    def remaining(self) -> float:
        return float(lib.ev_timer_remaining(self.loop._ev, self._check()))


class SignalWatcher(Watcher):
    """Watches a signal.  libev installs its handler when a signal's first watcher
    starts and resets the signal to ``SIG_DFL`` when its last one stops; with
    ``keep_disposition`` set, a stop puts the handler in effect just before it
    straight back (in C, one system call after libev's reset).
    """

    __slots__ = ("keep_disposition",)
    _ctype = "ev_signal *"
    _c: EvSignalPtr  # None once closed (see Watcher.close)
    _start_fn = lib.ev_signal_start

    def __init__(self, loop: Loop, signum: int) -> None:
        if not 0 < signum < 65:
            raise ValueError(f"invalid signal number {signum}")
        if signum == signal.SIGCHLD and loop.default:
            # libev's default loop owns SIGCHLD for its child watchers; a second
            # handler for it would never be called.
            raise ValueError("SIGCHLD is reserved for child watchers on the default loop")
        super().__init__(loop)
        self.keep_disposition = False
        lib.gp_signal_init(self._c, signum)

    # Read-only here: the C stop is chosen per stop (Watcher.stop calls it).
    @property
    def _stop_fn(self) -> Callable[[Any, Any], None]:  # type: ignore[override]
        if self.keep_disposition:
            return lib.gp_signal_stop_keeping_disposition
        return lib.ev_signal_stop

    @property
    def signum(self) -> int:
        return int(self._check().signum)

    def _describe(self) -> str:
        return f"signum={self._c.signum}" if self._c is not None else ""


class ChildWatcher(Watcher):
    """Watches a child process; ``rpid`` and ``rstatus`` hold what was reaped.

    Only the default loop can watch children (a libev rule).  While at least one
    child watcher is active, libev's SIGCHLD handler is installed and reaps every
    child that exits, including ones nobody watches.
    """

    __slots__ = ("_sigchld",)
    _ctype = "ev_child *"
    _c: EvChildPtr  # None once closed (see Watcher.close)
    _start_fn = lib.ev_child_start
    _stop_fn = lib.ev_child_stop

    def __init__(self, loop: Loop, pid: int, trace: bool = False) -> None:
        if not loop.default:
            raise ValueError(
                "child watchers need the default loop (the main thread's hub); "
                "libev reaps children only there"
            )
        super().__init__(loop)
        self._sigchld = False
        lib.gp_child_init(self._c, pid, 1 if trace else 0)

    def start(self, callback: Callable[..., Any], *args: Any) -> None:
        super().start(callback, *args)
        if not self._sigchld:
            self._sigchld = bool(lib.gp_sigchld_acquire())

    def stop(self) -> None:
        super().stop()
        if self._sigchld:
            self._sigchld = False
            lib.gp_sigchld_release()

    @property
    def pid(self) -> int:
        return int(self._check().pid)

    @property
    def rpid(self) -> int:
        return int(self._check().rpid)

    @property
    def rstatus(self) -> int:
        return int(self._check().rstatus)

    def _describe(self) -> str:
        return f"pid={self._c.pid}" if self._c is not None else ""


class AsyncWatcher(Watcher):
    """Wakes its loop from any OS thread with ``send()``."""

    __slots__ = ()
    _ctype = "ev_async *"
    _c: EvAsyncPtr  # None once closed (see Watcher.close)
    _start_fn = lib.ev_async_start
    _stop_fn = lib.ev_async_stop

    def __init__(self, loop: Loop) -> None:
        super().__init__(loop)
        lib.gp_async_init(self._c)

    def send(self) -> None:
        """Wake the loop from any thread; raises ``WatcherClosedError`` once it is gone."""
        loop = self.loop
        # Under the loop's wake lock: the owning thread may be destroying the
        # loop at this very moment (see Loop.destroy).
        with loop._wake_lock:
            c = self._check()
            lib.ev_async_send(loop._ev, c)

    @property
    def pending(self) -> bool:
        return self._c is not None and bool(lib.gp_async_pending(self._c))


class PrepareWatcher(Watcher):
    """Called before the loop blocks for I/O."""

    __slots__ = ()
    _ctype = "ev_prepare *"
    _c: EvPreparePtr  # None once closed (see Watcher.close)
    _start_fn = lib.ev_prepare_start
    _stop_fn = lib.ev_prepare_stop

    def __init__(self, loop: Loop) -> None:
        super().__init__(loop)
        lib.gp_prepare_init(self._c)


class CheckWatcher(Watcher):
    """Called after the loop has polled for I/O."""

    __slots__ = ()
    _ctype = "ev_check *"
    _c: EvCheckPtr  # None once closed (see Watcher.close)
    _start_fn = lib.ev_check_start
    _stop_fn = lib.ev_check_stop

    def __init__(self, loop: Loop) -> None:
        super().__init__(loop)
        lib.gp_check_init(self._c)


class IdleWatcher(Watcher):
    """Called when the loop has nothing else to do (keeps it from blocking)."""

    __slots__ = ()
    _ctype = "ev_idle *"
    _c: EvIdlePtr  # None once closed (see Watcher.close)
    _start_fn = lib.ev_idle_start
    _stop_fn = lib.ev_idle_stop

    def __init__(self, loop: Loop) -> None:
        super().__init__(loop)
        lib.gp_idle_init(self._c)
