"""``Loop``: one object over a libev ``ev_loop``, plus the Python side of an iteration.

An iteration of ``Loop.run_once`` does, in order:

1. poll libev once (``gp_run_once``): without blocking when callbacks are queued,
   until the next Python timer's deadline when timers are pending, otherwise until
   any watcher fires;
2. dispatch the watchers that became ready (read from the C side in one go, see
   ``_libev_build.py``);
3. run the Python timers whose deadline passed;
4. run queued callbacks, up to ``CALLBACK_BUDGET`` of them, so that a pair of
   greenlets yielding to each other forever still lets I/O in.

Python timers (``call_later``, ``resume_later``) are the base class
``PythonTimers`` (``timers.py``): one libev timer is armed for the earliest of
their deadlines.  They are measured with ``time.monotonic()``; libev watchers
use libev's own clock (``now()``).
"""

from __future__ import annotations

import itertools
import sys
import weakref
from _thread import _count as _other_os_threads
from _thread import allocate_lock
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from greenpatch.hub._libev import ffi, lib
from greenpatch.hub.callbacks import CallbackQueue, resume
from greenpatch.hub.timers import WOKEN, ErrorHandler, PythonTimers, TimerHandle

if TYPE_CHECKING:
    from greenpatch.hub._libev import GpLoopPtr
from greenpatch.hub.watchers import (
    READ,
    WRITE,
    AsyncWatcher,
    CheckWatcher,
    ChildWatcher,
    IdleWatcher,
    IoWatcher,
    PrepareWatcher,
    SignalWatcher,
    TimerWatcher,
    Watcher,
    WatcherClosedError,
)

__all__ = [
    "READ",
    "WOKEN",
    "WRITE",
    "AsyncWatcher",
    "CallbackQueue",
    "CheckWatcher",
    "ChildWatcher",
    "IdleWatcher",
    "IoWatcher",
    "Loop",
    "PrepareWatcher",
    "SignalWatcher",
    "TimerHandle",
    "TimerWatcher",
    "Watcher",
    "WatcherClosedError",
    "resume",
    "signal_wakes_default_loop",
    "wake_default_loop_for_signal",
]


#: The Loop wrapping libev's default loop, if any (there may be only one).
_default_owner: weakref.ref[Loop] | None = None

#: Every loop not yet garbage, for ``renew_wake_locks_after_fork``.
_live_loops: weakref.WeakSet[Loop] = weakref.WeakSet()


def renew_wake_locks_after_fork() -> None:
    """Call first thing in a forked child: give every loop a fresh wake lock.

    A thread of the parent (a thread-pool worker waking its hub) may have held
    a loop's lock at the instant of the fork; that thread does not exist in the
    child and would never release it, and the child's first wake-up of that
    loop would hang for ever.
    """
    for loop in list(_live_loops):
        loop._wake_lock = allocate_lock()


def signal_wakes_default_loop(signum: int) -> bool:
    """Make the Python-level handler just installed for ``signum`` wake the default loop.

    Call right after Python's ``signal.signal(signum, handler)`` (main thread):
    CPython's C handler stays in charge (it flags the signal; the interpreter
    runs the Python handler between bytecodes of the main thread) and a C
    handler of ours in front of it also makes a blocked ``ev_run`` of the
    default loop return, so that the hub gets back to Python code, where the
    interpreter runs the handler.  Without it, a signal taken by another
    thread, or one that lands just before the loop blocks, would wait for the
    next event.  Returns False when the disposition is not a handler CPython
    installed (SIG_DFL, SIG_IGN): nothing to chain.  See "Python-level signal
    handlers" in ``_libev_build.py``.
    """
    result = lib.gp_signal_chain(int(signum))
    if result < 0:
        raise OSError(ffi.errno, f"cannot chain the handler of signal {signum}")
    return bool(result)


def wake_default_loop_for_signal() -> None:
    """From any thread (even a C signal handler): make the default loop's poll return.

    For code that flags a Python-level signal without a real signal (as
    ``_thread.interrupt_main`` does), so that a main hub blocked in the kernel
    returns to Python and runs the handler.  Does nothing before the default
    loop exists.
    """
    lib.gp_signal_wake()


#: How many queued callbacks one iteration runs before it polls I/O again.
CALLBACK_BUDGET = 1000

# GIL hand-off.  A loop with work queued polls without blocking, and the cffi
# call releases the GIL for the microsecond of that poll, hundreds of times a
# second.  CPython hands the GIL to a waiting OS thread only when that thread
# waited a whole switch interval (5 ms) without the GIL changing hands; each
# of those short releases wakes the waiter, which finds the GIL taken again and
# starts its 5 ms over: a real thread (a thread-pool worker with a result, a
# user's thread) could wait seconds behind greenlets that never stop switching
# (measured: 2 s per round trip between a thread and a busy hub).  So, at most
# once per interval and only while other OS threads exist, a non-blocking poll
# stays out of Python a little longer, long enough for a woken waiter to take
# the GIL.  Cost: 0.1 ms per 5 ms of a busy loop, only when threads exist.
# (Rejected: sys.setswitchinterval, which does not help a waiter that is never
# allowed to time out; and a pause on every poll, which would cost everyone.)
_GIL_HANDOFF_INTERVAL = 0.005
_GIL_HANDOFF_PAUSE_US = 100


def _print_error(
    context: Any, exc_type: type[BaseException], value: BaseException, tb: Any
) -> None:
    sys.stderr.write(f"Error in {context!r}:\n")
    import traceback  # the rare path: not a start-up import

    traceback.print_exception(exc_type, value, tb, file=sys.stderr)


class Loop(PythonTimers):
    """An ``ev_loop`` with its watchers, a callback queue and Python timers.

    ``Loop(default=True)`` wraps libev's default loop (the only one that can watch
    children); each other ``Loop()`` owns a fresh ``ev_loop`` and frees it on
    ``destroy()``.
    """

    def __init__(self, default: bool = False, flags: int = 0):
        global _default_owner
        flags = flags or (lib.EVFLAG_AUTO | lib.EVFLAG_NOSIGMASK)
        if default:
            owner = _default_owner() if _default_owner is not None else None
            if owner is not None and owner._ptr is not None:
                # Two wrappers would fight over the C loop's user data (where ready
                # watchers are recorded): one would lose its events, and freeing
                # one would leave the other's events pointing at freed memory.
                raise RuntimeError(
                    f"libev's default loop is already wrapped by {owner!r}; use that Loop "
                    "(in the main thread: greenpatch.get_hub().loop)"
                )
        self._ptr: GpLoopPtr | None = lib.gp_loop_new(1 if default else 0, flags)
        if self._ptr == ffi.NULL:
            raise OSError(f"libev could not create an event loop (flags={flags:#x})")
        if default:
            _default_owner = weakref.ref(self)
        self._ev = self._ptr.loop
        self.default = default
        # Watchers that are active, by the id libev hands back to us.  Holding them
        # here is what keeps an active watcher (and its C struct) alive.
        self._active: dict[int, Watcher] = {}
        self._ids = itertools.count(1)
        # The rest of the batch of ready watchers being dispatched (ids and
        # their events, last first): ``_dispatch`` pops from the end, and so may
        # ``Hub.switch``, which wakes the next waiter of the batch from the
        # greenlet that blocks (the I/O hand-off, see ``Hub.switch``).  Always
        # these two list objects.
        self._batch_ids: list[int] = []
        self._batch_revents: list[int] = []
        #: The wait queues whose first waiter an I/O hand-off woke in this
        #: batch: at its end, each gets the check its own ``_fire`` makes once
        #: the woken greenlet yields (stop the watcher if nobody waits again),
        #: before the loop polls.
        self._batch_handed: list[Watcher] = []
        self._callbacks = CallbackQueue()
        self._lanes: list[deque[Any]] = []  # see CallbackQueue, "Lanes"
        self._init_timers()
        self._before_poll: list[Callable[[], None]] = []
        self._next_handoff = 0.0  # see "GIL hand-off"
        #: ``before_poll(call)``: call ``call()`` once, right before the loop next
        #: asks the kernel what is ready.  For work only worth doing if nothing
        #: undid the need for it meanwhile: a wait queue whose last waiter was
        #: woken stops its watcher there unless a new waiter came (the usual
        #: case: the woken greenlet reads, answers and waits again before the
        #: loop polls), which saves a stop and a start of the watcher per wait.
        #: ``call`` must not block, raise, or ask for another call.  (The list's
        #: own ``append``, bound once: it is called at nearly every wake-up.)
        self.before_poll: Callable[[Callable[[], None]], None] = self._before_poll.append
        self._stop_requested = False
        # Callbacks (and, through Hub.switch, direct greenlet hand-offs) left in
        # this iteration before I/O must be polled again; reset per iteration.
        self.budget = CALLBACK_BUDGET
        # Read by diagnostics from other threads (the loop-stall monitor): how
        # many iterations ran, and whether the loop is waiting in the kernel now
        # (not stalled) rather than running Python code.
        self.iterations = 0
        self.polling = False
        self.error_handler: ErrorHandler = _print_error
        # Held by whoever wakes the loop from another thread while it touches
        # the C loop, and by destroy() while it frees it: a thread-pool thread
        # delivering a result must never wake a loop that is being freed.
        # (An OS lock, bound before any patching: wakers are real threads.)
        self._wake_lock = allocate_lock()
        _live_loops.add(self)

    # -- state ---------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._ptr is None

    def _check_open(self) -> GpLoopPtr:
        ptr = self._ptr
        if ptr is None:
            raise WatcherClosedError("the loop was destroyed")
        return ptr

    def now(self) -> float:
        """libev's cached time of the current iteration (seconds since the epoch)."""
        self._check_open()
        return float(lib.ev_now(self._ev))

    def update_now(self) -> None:
        self._check_open()
        lib.ev_now_update(self._ev)

    @property
    def backend(self) -> str:
        self._check_open()
        code = lib.ev_backend(self._ev)
        names = {
            lib.EVBACKEND_SELECT: "select",
            lib.EVBACKEND_POLL: "poll",
            lib.EVBACKEND_EPOLL: "epoll",
            lib.EVBACKEND_KQUEUE: "kqueue",
            lib.EVBACKEND_PORT: "port",
            lib.EVBACKEND_LINUXAIO: "linuxaio",
            lib.EVBACKEND_IOURING: "iouring",
        }
        return names.get(code, hex(code))

    @property
    def iteration(self) -> int:
        self._check_open()
        return int(lib.ev_iteration(self._ev))

    @property
    def active_watcher_count(self) -> int:
        """Active libev watchers started through this object, plus pending timers."""
        return self.started_watchers + self.live_timers

    @property
    def pending_callbacks(self) -> int:
        return len(self._callbacks)

    @property
    def started_watchers(self) -> int:
        """libev watchers started through this object and not stopped (for leak checks)."""
        return len(self._active)

    def io_watchers(self, fd: int) -> list[IoWatcher]:
        """The active io watchers started through this loop on ``fd``."""
        ptr = self._check_open()
        capacity = 8
        while True:
            ids = ffi.new("long[]", capacity)
            count = lib.gp_fd_watchers(ptr, fd, ids, capacity)
            if count <= capacity:
                break
            capacity = count
        active = self._active
        found = (active.get(ids[index]) for index in range(count))
        return [watcher for watcher in found if isinstance(watcher, IoWatcher)]

    def watched_fds(self) -> list[int]:
        """The descriptors with an active io watcher started through this loop, sorted."""
        return sorted({w.fd for w in self._active.values() if isinstance(w, IoWatcher)})

    def ref(self) -> None:
        """Count one more reason for the loop to stay alive (``ev_ref``)."""
        self._check_open()
        lib.ev_ref(self._ev)

    def unref(self) -> None:
        self._check_open()
        lib.ev_unref(self._ev)

    # -- callbacks and timers -------------------------------------------------
    def run_callback(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` soon, in the loop's thread, in FIFO order."""
        self._callbacks.append((callback, args))

    def lane(self) -> deque[Any]:
        """A new lane: a FIFO of arguments for entries queued in step with it.

        See ``CallbackQueue``, "Lanes".  Appending the argument and then the
        lane's entry must not be separated by anything that could run the
        queue (a switch); the loop clears the lane with its callbacks.  For
        this loop's thread only.
        """
        lane: deque[Any] = deque()
        self._lanes.append(lane)
        return lane

    def run_callback_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Like ``run_callback``, callable from any OS thread; wakes a blocked loop."""
        # deque.append is atomic; the async send makes a blocked ev_run return.
        self._callbacks.append((callback, args))
        with self._wake_lock:
            ptr = self._ptr
            if ptr is not None:
                lib.gp_wake(ptr)

    def _run_callbacks(self) -> None:
        callbacks = self._callbacks
        popleft = callbacks.popleft
        while callbacks and self.budget > 0:
            self.budget -= 1
            callback, args = popleft()
            try:
                callback(*args)
            except Exception:
                self.error_handler(callback, *sys.exc_info())

    # -- running --------------------------------------------------------------
    def run_once(self, block: bool = True) -> bool:
        """Run one iteration; return whether anything could still happen afterwards."""
        ptr = self._ptr
        if ptr is None:
            raise WatcherClosedError("the loop was destroyed")
        pause_us = 0
        if self._callbacks or not block:
            timeout = 0.0
            now = monotonic()
            if now >= self._next_handoff:
                self._next_handoff = now + _GIL_HANDOFF_INTERVAL
                if _other_os_threads():
                    pause_us = _GIL_HANDOFF_PAUSE_US
        else:
            timeout = self._next_timeout()
        calls = self._before_poll
        if calls:
            # In place (users may hold the list's append): the calls must not
            # ask for more calls.
            for call in calls:
                call()
            calls.clear()
        live_handles = len(self._timers) - self._cancelled_timers
        live_resumes = len(self._resume_run) + len(self._resumes) - len(self._cancelled_resumes)
        wake_ref = 1 if live_resumes or live_handles > self._unref_timers else 0
        self.polling = True
        alive = lib.gp_run_once(ptr, timeout, wake_ref, pause_us)
        self.polling = False
        self.iterations += 1
        self.budget = CALLBACK_BUDGET
        # Any Python code run below may start watchers or take references that
        # libev's answer above could not know about: an iteration that ran
        # something counts as alive, and the next one asks libev again.
        ran = False
        if ptr.npending:
            self._dispatch(ptr)
            ran = True
        if self._timers or self._resume_run or self._resumes:
            ran = self._run_due_timers() or ran
        if self._callbacks:
            self._run_callbacks()
            ran = True
        return bool(
            alive
            or ran
            or self._callbacks
            or len(self._timers) > self._cancelled_timers + self._unref_timers
            or len(self._resume_run) + len(self._resumes) > len(self._cancelled_resumes)
        )

    def run(self) -> None:
        """Iterate until nothing can happen any more or ``break_()`` is called."""
        self._stop_requested = False
        while not self._stop_requested and self.run_once():
            pass
        self._stop_requested = False

    def break_(self) -> None:
        """Make ``run()`` return after the current iteration."""
        self._stop_requested = True
        with self._wake_lock:
            if self._ptr is not None:
                lib.ev_break(self._ev, 2)  # EVBREAK_ALL
                lib.gp_wake(self._ptr)

    def _dispatch(self, ptr: Any) -> None:
        count = ptr.npending
        ids = self._batch_ids
        revents = self._batch_revents
        # Last first, so that pop() takes them in libev's order (both here and
        # in Hub.switch's hand-off, which may take entries while we are
        # switched out in a watcher's _fire).
        ids[:] = ffi.unpack(ptr.ids, count)
        ids.reverse()
        revents[:] = ffi.unpack(ptr.revents, count)
        revents.reverse()
        ptr.npending = 0
        active = self._active
        escaping: BaseException | None = None
        while ids:
            watcher = active.get(ids.pop())
            events = revents.pop()
            # Missing: stopped by an earlier callback of this batch (ids are per
            # start, so a restarted watcher never receives a stale event).
            if watcher is not None:
                try:
                    watcher._fire(events)
                except Exception:
                    self.error_handler(watcher, *sys.exc_info())
                except BaseException as exc:
                    # KeyboardInterrupt, SystemExit, GreenletExit: it must
                    # propagate, but only after the rest of the batch ran --
                    # libev does not report timer, signal, child or async
                    # events twice, so a watcher skipped here would be lost.
                    if escaping is None:
                        escaping = exc
                    else:
                        self.error_handler(watcher, *sys.exc_info())
        handed = self._batch_handed
        if handed:
            for queue in handed:
                if not queue._waiters and queue._id:
                    queue.stop()
            handed.clear()
        if escaping is not None:
            try:
                raise escaping
            finally:
                escaping = None  # no reference cycle through this frame

    def _forget_batch(self) -> None:
        """Drop what is left of a batch being dispatched (its hub is going away)."""
        self._batch_ids.clear()
        self._batch_revents.clear()
        self._batch_handed.clear()

    def abandon_waits(self) -> None:
        """Forget what greenlets of a hub that is gone left here; keep the rest.

        Called when the default loop outlives its hub (``Hub.destroy`` keeps it, or
        its thread vanished in a fork) and is handed to the next hub of the main
        thread.  Queued callbacks and Python timers only ever resume or serve that
        hub's greenlets, and watchers with a ``waiter`` are greenlet waits: all are
        dropped, so the next hub never switches into a greenlet that belongs to a
        dead hub (or to a thread that does not exist).  Every watcher is stopped
        too, except those marked ``process_wide`` (signal and child watchers whose
        callbacks serve whichever hub runs this loop).
        """
        self._check_open()
        for watcher in list(self._active.values()):
            if not watcher.process_wide:
                watcher.stop()
        self._forget_batch()
        self._callbacks.clear()
        for lane in self._lanes:
            lane.clear()
        # Handles are marked done: a late cancel() by a greenlet that is
        # finalised later finds nothing to take back.
        self._drop_timers()

    def reinit(self) -> None:
        """Call in a forked child: libev re-creates its kernel state (``ev_loop_fork``)."""
        ptr = self._check_open()
        lib.ev_loop_fork(self._ev)
        lib.gp_loop_forked(ptr)

    def destroy(self) -> None:
        """Stop every watcher and free the ``ev_loop`` (the default one is kept)."""
        if self._ptr is None:
            return
        for watcher in list(self._active.values()):
            watcher.stop()
        self._forget_batch()
        self._callbacks.clear()
        for lane in self._lanes:
            lane.clear()
        self._drop_timers()
        with self._wake_lock:
            ptr, self._ptr = self._ptr, None
        lib.gp_loop_free(ptr)

    def __del__(self) -> None:
        # A non-default loop owns kernel resources (an epoll fd, an eventfd).
        if getattr(self, "_ptr", None) is not None and not self.default:
            try:
                self.destroy()
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __repr__(self) -> str:
        if self._ptr is None:
            return "<Loop destroyed>"
        kind = "default" if self.default else "own"
        return (
            f"<Loop {kind} {self.backend} active={len(self._active)} "
            f"callbacks={len(self._callbacks)} timers={self.live_timers}>"
        )

    # -- watcher factories ----------------------------------------------------
    # ``process_wide=True``: the watcher serves the process, not the hub that
    # started it, and survives ``abandon_waits`` (see ``Watcher``); the default,
    # False, is stopped when the hub that ran this loop goes away, so that it
    # never fires into a dead hub.
    def io(self, fd: int, events: int, *, process_wide: bool = False) -> IoWatcher:
        return _marked(IoWatcher(self, fd, events), process_wide)

    def timer(
        self, after: float, repeat: float = 0.0, *, process_wide: bool = False
    ) -> TimerWatcher:
        return _marked(TimerWatcher(self, after, repeat), process_wide)

    def signal(self, signum: int, *, process_wide: bool = False) -> SignalWatcher:
        return _marked(SignalWatcher(self, signum), process_wide)

    def child(self, pid: int, trace: bool = False, *, process_wide: bool = False) -> ChildWatcher:
        return _marked(ChildWatcher(self, pid, trace), process_wide)

    def async_(self, *, process_wide: bool = False) -> AsyncWatcher:
        return _marked(AsyncWatcher(self), process_wide)

    def prepare(self, *, process_wide: bool = False) -> PrepareWatcher:
        return _marked(PrepareWatcher(self), process_wide)

    def check(self, *, process_wide: bool = False) -> CheckWatcher:
        return _marked(CheckWatcher(self), process_wide)

    def idle(self, *, process_wide: bool = False) -> IdleWatcher:
        return _marked(IdleWatcher(self), process_wide)


_W = TypeVar("_W", bound=Watcher)


def _marked(watcher: _W, process_wide: bool) -> _W:
    watcher.process_wide = process_wide
    return watcher
