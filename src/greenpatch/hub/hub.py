"""The hub: one greenlet per OS thread that runs the loop and resumes the others.

The one door
------------
Every blocking wait in greenpatch ends in ``Hub.switch()``: the calling greenlet
gives control to the hub and is resumed when something (a callback, a watcher, a
timer) switches back to it.  Nothing else switches *to the hub*.  Keeping the door
narrow is what lets tracing, the stall monitor and cancellation live in one place
(``switch_hooks``).

Wake-ups that may go stale
--------------------------
A greenlet can be woken twice: say a Timeout throws into it while a callback that
would resume it is already queued.  A wait that could be resumed by a queued
callback uses a ``Waiter``, which forgets its greenlet when the wait ends, so a
late resume does nothing.  Waits on watchers and timers stop them in ``finally``
instead.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from _thread import get_ident as _get_ident
from functools import partial
from time import monotonic
from typing import Any, Callable

from greenlet import GreenletExit, getcurrent
from greenlet import greenlet as RawGreenlet

import greenpatch.hub._process as _process
import greenpatch.hub.loop as _loop_module
from greenpatch.hub.loop import WOKEN, CallbackQueue, Loop, resume
from greenpatch.hub.watchers import EV_ERROR, Watcher

__all__ = [
    "BlockingSwitchOutError",
    "ConcurrentObjectUseError",
    "GreenletExit",
    "Hub",
    "LoopExit",
    "Waiter",
    "get_hub",
    "get_hub_if_exists",
    "getcurrent_task",
    "idle",
    "reinit",
    "resume",
    "sleep",
]


class LoopExit(Exception):
    """Raised in a hub's main greenlet when it waits on something nothing can wake."""


class BlockingSwitchOutError(RuntimeError):
    """A blocking call was made from the hub greenlet itself (e.g. in a callback)."""


class ConcurrentObjectUseError(RuntimeError):
    """Two greenlets tried to wait on the same single-waiter object."""


_UNSET: Any = object()

#: ``greenlet.switch`` unbound, looked up once: ``Hub.switch`` overrides it.
_switch_to = RawGreenlet.switch


class Hub(RawGreenlet):  # type: ignore[misc]  # greenlet ships no stubs for subclassing
    """The greenlet that runs the loop of one OS thread.  Get it with ``get_hub()``."""

    # Slots, not the instance dict greenlet gives every greenlet: CPython 3.11
    # specialises attribute reads only for slots and for plain classes' own
    # dicts, and a dict read on a greenlet subclass costs four times a slot read
    # (measured: 18 ns against 4 ns); ``switch`` reads three per call.  The
    # dict is still there for anything else callers hang on a hub.
    __slots__ = (
        "_batch_handed",
        "_batch_ids",
        "_batch_revents",
        "_callbacks",
        "_destroyed",
        "destroy_hooks",
        "loop",
        "module_state",
        "switch_hooks",
        "task_lane",
        "task_lane_entry",
        "thread_ident",
    )

    #: Called with (hub, from_greenlet) each time a greenlet switches into the hub;
    #: used by diagnostics such as the loop-stall monitor.  Empty by default.
    switch_hooks: list[Callable[[Hub, Any], None]]

    def __init__(self, loop: Loop | None = None) -> None:
        super().__init__()
        self.thread_ident = _get_ident()
        if loop is None:
            if self.thread_ident == threading.main_thread().ident:
                # libev's default loop outlives hubs: take it over when the previous
                # main hub was destroyed (or vanished with its thread in a fork).
                loop = _process.adopt_default_loop() or Loop(default=True)
            else:
                loop = Loop()
        self.loop = loop
        _process.slab_frame_stacks()
        # Weakly: a hub must die by reference counting when its thread ends
        # (in that thread).  Through a cycle it would be left to the garbage
        # collector of another thread, and greenlet 3.5 crashes traversing a
        # dead thread's greenlets there (tools/stdlib_tests.py, test_socket).
        self.loop.error_handler = _weak_error_handler(self)
        self.switch_hooks = []
        #: What other modules keep per hub, each under a key of its own; the hub
        #: never looks inside (greenlet.py's parked workers, threadpool.py's
        #: default pool, signal.py's dispatchers).  Gone with the hub.
        self.module_state: dict[str, Any] = {}
        #: Called as ``hook(hub)`` by ``destroy()``, in order: how a module that
        #: keeps resources per hub (the default thread pool) releases them
        #: without the hub knowing that module.
        self.destroy_hooks: list[Callable[[Hub], None]] = []
        self._destroyed = False
        self._callbacks: CallbackQueue = loop._callbacks
        self._batch_ids: list[int] = loop._batch_ids
        self._batch_revents: list[int] = loop._batch_revents
        self._batch_handed: list[Watcher] = loop._batch_handed
        #: greenlet.py's lane of tasks to start and the one callback entry that
        #: starts the next (see ``CallbackQueue``, "Lanes"): set up by the first
        #: spawn in this hub.  Slots, not ``module_state``: a dict lookup on
        #: every spawn.
        self.task_lane: Any
        self.task_lane_entry: Any

    # -- the door -------------------------------------------------------------
    def switch(self, *args: Any) -> Any:
        """Give up control until someone resumes us; returns what they passed.

        Usually this switches to the hub.  When the next queued callback merely
        resumes another greenlet (``resume_soon``), we switch to that greenlet
        directly: one switch instead of two (to the hub, then from it), which is
        what makes ``sleep(0)`` cheap.  Hand-offs spend the loop's per-iteration
        callback budget, so I/O is still polled every ``CALLBACK_BUDGET`` of them.
        """
        current = getcurrent()
        if current is self:
            raise BlockingSwitchOutError(
                "a blocking call was made from the hub greenlet (e.g. inside a loop "
                "callback); spawn a greenlet for work that waits"
            )
        if self.switch_hooks:
            for hook in self.switch_hooks:
                hook(self, current)
        callbacks = self._callbacks
        # The head entry is read in place rather than through
        # CallbackQueue.head_resume (one Python call less on the path of every
        # sleep(0) and wake-up), and never bound to a local: a local of this
        # frame lives as long as we are switched out, and an entry that is not
        # a resume (say ``(task.throw, (exc,))``) would pin its arguments, and
        # through them a finished task's frames, for that long.
        if callbacks and callbacks[0][0] is resume:
            token = callbacks[0][1]
            # Never hand off to ourselves (our own sleep(0) token at the head):
            # that would not yield at all, e.g. to the hub callback that woke us.
            loop = self.loop
            if token and token[0] is not current and loop.budget > 0:
                callbacks.popleft()
                loop.budget -= 1
                return token[0].switch()
        ids = self._batch_ids
        if ids and not args:
            # The I/O hand-off.  The hub is dispatching a batch of ready
            # watchers (it woke us, or whoever woke us was handed off to): wake
            # the next one's first waiter from here, one greenlet switch
            # instead of two (to the hub, from the hub); the hub goes on with
            # what is left of the batch when it runs again.  Only the plain
            # case: a wait queue (``_waiters``, empty for other watchers) whose
            # first waiter still waits and is not us; errors, stale entries and
            # everything else are left to the hub's ``_fire``.  (Rejected: a
            # ``_take`` method on each watcher, with the post-wake check queued
            # with ``before_poll``: two Python calls and a bound method per
            # hand-off cost as much as the switch saved, measured.)
            watcher = self.loop._active.get(ids[-1])
            if watcher is not None:
                waiters = watcher._waiters
                if waiters:
                    revents = self._batch_revents
                    wait = waiters[0]
                    glet = wait[0]
                    if glet is not None and glet is not current and not revents[-1] & EV_ERROR:
                        del waiters[0]
                        wait[0] = None
                        ids.pop()
                        revents.pop()
                        # The check its _fire makes once the woken greenlet
                        # yields (stop the watcher if nobody waits again) is
                        # the loop's, at the end of the batch.
                        self._batch_handed.append(watcher)
                        return glet.switch()
        if args:
            return _switch_to(self, *args)
        return _switch_to(self)

    def schedule_resume(self, token: list[Any]) -> None:
        """Queue the resume of the greenlet in ``token`` (a one-item list it owns)."""
        self._callbacks.append((resume, token))

    def resume_soon(self, glet: Any) -> list[Any]:
        """Queue a plain resume of ``glet``; returns a token whose ``clear()`` cancels it.

        The token is a one-item list because the queue calls ``callback(*args)``:
        clearing the list turns the queued call into a no-op without searching
        the queue.  (A token object with a method would cost an allocation and a
        bound method on the hottest path; ``sleep(0)`` is built on this.)
        """
        token = [glet]
        self._callbacks.append((resume, token))
        return token

    # -- the loop -------------------------------------------------------------
    def run(self) -> None:
        loop = self.loop
        run_once = loop.run_once
        while not self._destroyed:
            try:
                alive = run_once()
            except GreenletExit:
                raise
            except BaseException as exc:
                # SystemExit, KeyboardInterrupt, or whatever a Python signal
                # handler raised: the handler ran here because the main thread
                # was waiting in the loop, but the exception is the main
                # greenlet's, as the stdlib raises it in the main thread.
                # Letting it end run() would kill the hub for good.
                self._to_main(exc)
                continue
            if not alive and not self._destroyed:
                self._to_main(
                    LoopExit(
                        "This operation would block forever: the hub has no queued "
                        "callbacks, no pending timers and no active watchers, so "
                        f"nothing can wake the waiting greenlet. Hub: {self!r}"
                    )
                )

    def _to_main(self, exc: BaseException) -> None:
        parent = self.parent
        if parent is None or parent.dead:
            raise exc
        parent.throw(exc)

    def handle_error(
        self, context: Any, exc_type: type[BaseException], value: BaseException, tb: Any
    ) -> None:
        """Report an error raised by a callback or a greenlet; the loop goes on.

        SystemExit and KeyboardInterrupt are passed to the main greenlet instead.
        """
        if issubclass(exc_type, (SystemExit, KeyboardInterrupt)):
            self.loop.run_callback(self._to_main, value)
            return
        if issubclass(exc_type, GreenletExit):
            return
        name = getattr(context, "name", None) or repr(context)
        sys.stderr.write(f"{name} failed with {exc_type.__name__}\n")
        import traceback  # the rare path: not a start-up import

        traceback.print_exception(exc_type, value, tb, file=sys.stderr)

    # -- waiting --------------------------------------------------------------
    def wait(
        self, watcher: Watcher, timeout: float | None = None, timeout_exc: Any = _UNSET
    ) -> Any:
        """Block the current greenlet until ``watcher`` fires (or the timeout passes).

        The watcher is started with a callback that resumes us and is stopped
        whatever happens; ``cancel_wait`` can end the wait with an error.
        """
        current = getcurrent()
        watcher.waiter = current
        watcher.start(current.switch)
        timer = None
        if timeout is not None:
            exc = TimeoutError("timed out") if timeout_exc is _UNSET else timeout_exc
            timer = self.loop.call_later(timeout, current.throw, exc)
        try:
            return self.switch()
        finally:
            watcher.stop()
            watcher.waiter = None
            if timer is not None:
                timer.cancel()

    def cancel_wait(self, watcher: Watcher, error: BaseException) -> bool:
        """End the wait of whoever is blocked on ``watcher`` by raising ``error`` in it.

        The watcher is stopped at once, so a descriptor about to be closed is no
        longer polled; the waiter is told on the next iteration, and only if it is
        still waiting on this watcher by then.  Returns whether someone waited.
        """
        waiter = watcher.waiter
        if not watcher.active or waiter is None:
            return False
        watcher.stop()
        self.loop.run_callback(self._cancel_wait, watcher, waiter, error)
        return True

    @staticmethod
    def _cancel_wait(watcher: Watcher, waiter: Any, error: BaseException) -> None:
        if watcher.waiter is waiter and not waiter.dead:
            waiter.throw(error)

    def sleep(self, seconds: float = 0, ref: bool = True) -> None:
        """Suspend the current greenlet; ``sleep(0)`` lets every ready greenlet run first.

        ``ref=False``: the sleep alone does not keep the loop running, so
        ``LoopExit`` (or the end of ``wait()``) may come before it ends.
        """
        if seconds <= 0:
            token = [getcurrent()]
            self._callbacks.append((resume, token))
            try:
                self.switch()
            except BaseException:
                token.clear()  # never resume us later by mistake
                raise
            return
        current = getcurrent()
        loop = self.loop
        # Only the loop's timer resumes us with WOKEN: a stray resume (a bug
        # elsewhere) must not cut the sleep short.
        if not ref:  # an unreferenced timer needs a handle to say so
            timer = loop.call_later(seconds, current.switch, WOKEN)
            timer.ref = False
            try:
                while self.switch() is not WOKEN:
                    pass
            finally:
                timer.cancel()
            return
        # A timer without a handle: one tuple in the heap (see timers.py).  The
        # module-level sleep() repeats these lines (one Python call less).
        key = loop.resume_later(seconds, current)
        try:
            while self.switch() is not WOKEN:
                pass
        except BaseException:
            loop.cancel_resume(key)  # still pending: only the timer passes WOKEN
            raise

    # -- life cycle -----------------------------------------------------------
    def join(self, timeout: float | None = None) -> bool:
        """From the main greenlet: run the loop until nothing is left to do.

        Returns True when the loop ran out of work, False on timeout.
        """
        if getcurrent() is self:
            raise BlockingSwitchOutError("cannot join the hub from inside the hub")
        timer = None
        if timeout is not None:
            current = getcurrent()
            timer = self.loop.call_later(timeout, current.switch, _UNSET)
            timer.ref = False  # the deadline itself is no work to wait for
        try:
            while True:
                if self.switch() is _UNSET:
                    return False
        except LoopExit:
            return True
        finally:
            if timer is not None:
                timer.cancel()

    def destroy(self, destroy_loop: bool | None = None) -> None:
        """Stop this hub; its loop is freed unless it is the default one.

        Greenlets still blocked on this hub are abandoned: nothing resumes them.
        Its default thread pool is shut down (calls running on a thread finish,
        their results are dropped).  The default loop is kept for the next hub of
        the main thread (``get_hub()`` makes one), without this hub's queued
        callbacks, timers and greenlet waits but with its signal and child
        watchers, which belong to the process rather than to a hub.
        """
        self._destroyed = True
        hooks, self.destroy_hooks = self.destroy_hooks, []
        for hook in hooks:
            try:
                hook(self)
            except Exception:
                self.handle_error(hook, *sys.exc_info())
        if destroy_loop is None:
            destroy_loop = not self.loop.default
        if destroy_loop:
            self.loop.destroy()
        elif self.loop.default and not self.loop.closed:
            _process.orphan_default_loop(self.loop)
        if getattr(_local, "hub", None) is self:
            del _local.hub

    def __repr__(self) -> str:
        return f"<Hub thread={self.thread_ident} {self.loop!r}>"


class Waiter:
    """A one-shot, forgettable resume token for one greenlet.

    ``get()`` blocks until ``switch(value)`` or ``throw(exc)`` is called (from the
    hub); calls made before ``get()`` are remembered, calls after it ended
    (e.g. after a Timeout) are dropped.
    """

    __slots__ = ("_exception", "_value", "greenlet", "hub")

    def __init__(self, hub: Hub | None = None) -> None:
        self.hub = hub if hub is not None else get_hub()
        self.greenlet: Any = None
        self._value: Any = _UNSET
        self._exception: BaseException | None = None

    def switch(self, value: Any = None) -> None:
        glet = self.greenlet
        if glet is None:
            self._value = value
        else:
            self.greenlet = None
            glet.switch(value)

    def throw(self, exception: BaseException) -> None:
        glet = self.greenlet
        if glet is None:
            self._exception = exception
        else:
            self.greenlet = None
            glet.throw(exception)

    @property
    def ready(self) -> bool:
        return self._value is not _UNSET or self._exception is not None

    def get(self) -> Any:
        if self._exception is not None:
            raise self._exception
        if self._value is not _UNSET:
            return self._value
        if self.greenlet is not None:
            raise ConcurrentObjectUseError(f"this Waiter is already used by {self.greenlet!r}")
        self.greenlet = getcurrent()
        try:
            return self.hub.switch()
        finally:
            self.greenlet = None


# OS-thread primitives are bound at import, before any patch: once threading is
# patched, threading.get_ident() names greenlets, and the hub is per OS thread.
_local = threading.local()
_fork_hook_installed = False


def _reinit_after_fork() -> None:
    _loop_module.renew_wake_locks_after_fork()
    _process.count_threads_lost_in_fork()
    hub = getattr(_local, "hub", None)
    if hub is not None and not hub.loop.closed:
        hub.loop.reinit()
    _process.hand_on_default_loop_after_fork(hub.loop if hub is not None else None)


def _weak_error_handler(hub: Hub) -> Callable[..., None]:
    ref = weakref.ref(hub)

    def handle_error(*args: Any) -> None:
        alive = ref()
        if alive is not None:
            alive.handle_error(*args)
        else:
            import traceback  # the rare path: not a start-up import

            traceback.print_exception(*args[1:], file=sys.stderr)

    return handle_error


def get_hub() -> Hub:
    """The hub of the calling OS thread, created on first use."""
    try:
        return _local.hub  # type: ignore[no-any-return]
    except AttributeError:
        pass
    global _fork_hook_installed
    if not _fork_hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reinit_after_fork)
        _fork_hook_installed = True
    hub = _local.hub = Hub()
    return hub


#: What getcurrent_task() returns once greenlet is being finalized at exit: a
#: unique object, so that nothing (e.g. an RLock's owner check) mistakes it for a task.
_FINALIZING: Any = object()


def getcurrent_task() -> Any:
    """The running ``Greenlet`` task, or the raw greenlet when not inside a task.

    Hub workers carry the task they run in a ``task`` attribute (greenlet.py).
    """
    try:
        current = getcurrent()
    except Exception:  # greenlet raises "being finalized" late at interpreter exit
        return _FINALIZING
    task = getattr(current, "task", None)
    return task if task is not None else current


def get_hub_if_exists() -> Hub | None:
    return getattr(_local, "hub", None)


#: ``get_hub_if_exists()`` as a C-level partial (no Python frame): for paths
#: taken on every socket wait.
hub_of_this_thread: Callable[[], Hub | None] = partial(getattr, _local, "hub", None)


def sleep(seconds: float = 0, ref: bool = True) -> None:
    """Cooperative sleep; ``sleep(0)`` yields to every other ready greenlet.

    ``ref=False`` (as in gevent): this sleep does not keep the loop alive.
    """
    try:
        hub = _local.hub
    except AttributeError:
        hub = get_hub()
    if seconds <= 0:
        # Hub.sleep(0), without its frame: the most frequent call of a busy
        # program that yields, and a queued resume and one switch is all it is.
        token = [getcurrent()]
        hub._callbacks.append((resume, token))
        try:
            hub.switch()
        except BaseException:
            token.clear()  # never resume us later by mistake
            raise
        return
    if not ref:
        hub.sleep(seconds, ref)
        return
    # Hub.sleep's timed path, without its frame (the comments are there), and
    # Loop.resume_later's common case too, without its frame: a deadline
    # after every pending sleep's joins the end of the in-order FIFO (4% of
    # the instructions of a sleeper of 10,000, measured).
    loop = hub.loop
    deadline = monotonic() + seconds
    run = loop._resume_run
    if not run or deadline >= run[-1][0]:
        key = next(loop._timer_seq)
        run.append((deadline, key, getcurrent()))
    else:
        key = loop.resume_later(seconds, getcurrent())
    try:
        while hub.switch() is not WOKEN:
            pass
    except BaseException:
        loop.cancel_resume(key)
        raise


def idle(priority: int = 0) -> None:
    """Wait until the hub has nothing ready to run (gevent's ``idle``).

    Returns once every greenlet that could run has run until it blocked: the
    callback queue is empty when this greenlet is resumed.  ``priority`` (a
    libev idle-watcher priority in gevent) is accepted and has no effect: the
    queue is FIFO and has no priorities.
    """
    hub = get_hub()
    hub.sleep(0)
    while hub._callbacks:
        hub.sleep(0)


def reinit() -> None:
    """gevent's ``reinit()``, for code that calls it after ``os.fork()``.

    Nothing to do: the hub re-initialises its loop in a forked child by itself
    (an ``os.register_at_fork`` hook, see ``_reinit_after_fork``), and doing it a
    second time would make libev re-register every descriptor for nothing.
    """
