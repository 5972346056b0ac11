"""``ThreadPool``: run blocking calls on real OS threads; greenlets wait without blocking the loop.

    pool = get_threadpool()                 # the calling hub's default pool
    result = pool.spawn(blocking_call, arg) # an AsyncResult, set in the hub's thread
    value = result.get()                    # other greenlets run meanwhile
    value = pool.apply(blocking_call, (arg,))

How a result travels
--------------------
``spawn`` (in the hub's thread) counts one ``loop.ref()`` and puts the task on a
deque guarded by a lock.  A worker thread runs it, stores the outcome on the task
and queues ``_deliver`` with ``loop.run_callback_threadsafe``, which wakes a loop
blocked in epoll.  ``_deliver`` runs in the hub, sets the ``AsyncResult`` and
drops the ref.  The ref is what keeps ``Hub.run`` from raising ``LoopExit`` at a
greenlet waiting for a thread: to libev the pending work is invisible otherwise.

Only original primitives on the worker side
-------------------------------------------
Workers are started with ``_thread.start_new_thread`` and park on
``_thread.allocate_lock`` locks, both bound at import (after ``patch_all()`` the
``_thread`` module's names make greenlets and green locks); the queue is a
``deque`` plus one such lock.
A patcher will replace ``threading`` (and ``queue``) with cooperative twins;
``threading.Thread``, ``threading.Condition`` or ``queue.Queue`` here would then
turn the workers into greenlets of the hub they are meant to unload.  ``_thread``
is never patched, so binding to it at import is safe.

Idle workers exit
-----------------
Threads start lazily, one per task while none is idle, up to ``maxsize``, and an
idle worker exits after ``idle_timeout`` seconds.  Threads that outlive their
work (gevent's resolver threads do) were reported to make patched test suites
8x slower; starting a thread costs tens of microseconds, so a short idle
timeout is cheap.

Parking uses one lock per idle worker, released by whoever hands it work,
rather than one shared condition: a lock's ``acquire(timeout=...)`` is the only
timed wait ``_thread`` offers, and a per-worker lock wakes exactly one thread.

Fork
----
Only the forking thread survives ``os.fork``.  In the child every pool is reset
to empty (new lock, no threads); tasks that had not finished fail with a
``RuntimeError`` instead of hanging their waiters.  The hook is registered with
``os.register_at_fork`` when the first pool is made, and pools sit in a
``WeakSet`` so the hook keeps none alive.
"""

from __future__ import annotations

import _thread
import functools
import os
import weakref
from _thread import allocate_lock as _allocate_lock
from _thread import get_ident as _get_ident
from _thread import start_new_thread as _start_new_thread
from collections import deque
from typing import Any, Callable, TypeVar

from greenlet import getcurrent

from greenpatch.hub.event import AsyncResult, Event
from greenpatch.hub.hub import Hub, get_hub, get_hub_if_exists

__all__ = ["ThreadPool", "get_threadpool"]

T = TypeVar("T")

#: Threads of the per-hub pool made by ``get_threadpool``.
DEFAULT_MAXSIZE = 10
#: Seconds an idle worker waits for more work before it exits.
DEFAULT_IDLE_TIMEOUT = 1.0

_IDLE = "idle"  # no unfinished task
_STOPPED = "stopped"  # no unfinished task and no thread left


class _Task:
    """One call to run on a worker; subclasses say how its outcome is reported."""

    __slots__ = ("call",)

    def __init__(self, call: Callable[[], Any]) -> None:
        self.call: Callable[[], Any] | None = call  # dropped once run: it may hold a lot

    def execute(self) -> None:
        """In a worker thread: run the call and report it.  Never raises."""
        raise NotImplementedError

    def abandon(self, error: BaseException) -> None:
        """The task will never run (or its worker is gone): report ``error`` unless done."""
        raise NotImplementedError


class _WorkerThreads:
    """The thread machinery shared by ``ThreadPool`` and ``ThreadPoolExecutor``.

    Thread-agnostic: tasks may be queued from any thread.  Everything below is
    guarded by ``_mutex``, held only for a few list operations, so taking it in a
    hub's thread never stalls the loop noticeably.
    """

    def __init__(self, maxsize: int, idle_timeout: float) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, not {maxsize!r}")
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, not {idle_timeout!r}")
        self._maxsize = maxsize
        self.idle_timeout = idle_timeout
        self._reset()
        _track_for_fork(self)

    def _reset(self) -> None:
        self._mutex = _allocate_lock()
        self._queue: deque[_Task] = deque()
        self._unfinished: set[_Task] = set()  # queued or running
        # Wake locks of parked workers.  Taken last-in first-out, so the workers
        # idle longest time out and exit while the pool is lightly used.
        self._idle: list[_thread.LockType] = []
        self._threads = 0
        self._closed = False
        # (hub, event, condition) of greenlets waiting in join() or shutdown().
        self._waiters: list[tuple[Hub, Event, str]] = []

    # -- state ----------------------------------------------------------------
    @property
    def maxsize(self) -> int:
        """The most threads that run at once; lowering it retires the extra ones."""
        return self._maxsize

    @maxsize.setter
    def maxsize(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"maxsize must be at least 1, not {value!r}")
        with self._mutex:
            self._maxsize = value
            # Raised: give queued work the threads it may now have.  Lowered: wake
            # idle workers so the extra ones exit now rather than at their timeout.
            missing = min(len(self._queue) - len(self._idle), value - self._threads)
            for _ in range(max(missing, 0)):
                self._start_thread_locked()
            for _ in range(min(self._threads - value, len(self._idle))):
                self._idle.pop().release()

    @property
    def size(self) -> int:
        """How many worker threads are alive now (busy or idle)."""
        return self._threads

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the thread side ------------------------------------------------------
    def _enqueue(self, task: _Task) -> None:
        with self._mutex:
            if self._closed:
                raise RuntimeError(f"{self!r} was shut down; it takes no new work")
            self._queue.append(task)
            self._unfinished.add(task)
            if self._idle:
                self._idle.pop().release()
            elif self._threads < self._maxsize:
                try:
                    self._start_thread_locked()
                except BaseException:
                    if self._threads == 0:  # nobody would ever run it
                        self._queue.remove(task)
                        self._unfinished.discard(task)
                        raise
                    # Otherwise a busy worker will take it when it is free.

    def _start_thread_locked(self) -> None:
        self._threads += 1
        try:
            _start_new_thread(self._worker_main, ())
        except BaseException:
            self._threads -= 1
            raise

    def _worker_main(self) -> None:
        wake = _allocate_lock()
        wake.acquire()
        mutex = self._mutex
        while True:
            task = None
            with mutex:
                if self._threads > self._maxsize or (self._closed and not self._queue):
                    if self._queue and self._idle:
                        # We may have been woken for a task we now leave: pass it on.
                        self._idle.pop().release()
                    self._thread_exits_locked()
                    return
                if self._queue:
                    task = self._queue.popleft()
                else:
                    self._idle.append(wake)
            if task is None:
                if wake.acquire(True, self.idle_timeout):
                    continue
                with mutex:
                    if wake in self._idle:
                        self._idle.remove(wake)
                        self._thread_exits_locked()
                        return
                # Someone took our lock off the idle list and released it (under
                # the mutex, so it is released by now): consume that wake-up.
                wake.acquire()
                continue
            task.execute()
            with mutex:
                self._unfinished.discard(task)
                self._notify_locked()

    def _thread_exits_locked(self) -> None:
        self._threads -= 1
        self._notify_locked()

    def _notify_locked(self) -> None:
        if self._unfinished or not self._waiters:
            return
        still = []
        for entry in self._waiters:
            if entry[2] == _IDLE or self._threads == 0:
                # The wake-up is queued on the waiter's hub after the deliveries of
                # the finished tasks (FIFO), so a joiner sees every result set.
                entry[1].set()
            else:
                still.append(entry)
        self._waiters = still

    # -- waiting --------------------------------------------------------------
    def _wait_until(self, condition: str, timeout: float | None) -> bool:
        # An Event rather than a bare Waiter: it is made to be set from another
        # thread, and keeps the waiter's loop alive while other threads exist.
        hub = get_hub()
        entry = (hub, Event(), condition)
        with self._mutex:
            if not self._unfinished and (condition == _IDLE or self._threads == 0):
                return True
            self._waiters.append(entry)
        # The pool knows its threads will wake us (a thread it has just started
        # may not be counted by _thread._count() yet), so it keeps the loop alive
        # itself for the duration of the wait.
        hub.loop.ref()
        try:
            return entry[1].wait(timeout)
        finally:
            hub.loop.unref()
            with self._mutex:
                if entry in self._waiters:
                    self._waiters.remove(entry)

    def join(self, timeout: float | None = None) -> bool:
        """Wait (cooperatively) until every submitted task has finished.

        Returns True then, False when ``timeout`` passed first.
        """
        return self._wait_until(_IDLE, timeout)

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Take no new work and let the threads exit once the queue is empty.

        ``cancel_pending`` drops the tasks no thread has started (their results
        fail with ``concurrent.futures.CancelledError``); running calls cannot be
        interrupted and always finish.  ``wait`` blocks the calling greenlet until
        every thread has exited.
        """
        with self._mutex:
            self._closed = True
            cancelled = list(self._queue) if cancel_pending else []
            if cancel_pending:
                self._queue.clear()
                self._unfinished.difference_update(cancelled)
            while self._idle:
                self._idle.pop().release()
            self._notify_locked()
        for task in cancelled:
            # Imported here: concurrent.futures pulls in logging (~6 ms), which
            # patch_all() should not pay for through the resolver.
            from concurrent.futures import CancelledError

            task.abandon(CancelledError(f"{self!r} was shut down before it ran"))
        if wait:
            self._wait_until(_STOPPED, None)

    def kill(self) -> None:
        """Shut down now: drop queued tasks, do not wait for running ones."""
        self.shutdown(wait=False, cancel_pending=True)

    # -- fork -----------------------------------------------------------------
    def _after_fork_in_child(self) -> None:
        lost = list(self._unfinished)
        closed = self._closed
        waiters = self._waiters
        self._reset()
        self._closed = closed
        self._abandon_after_fork(lost)
        # Greenlets of this thread's hub that were joining: nothing is left to wait
        # for.  Waiters of other threads' hubs are gone with their threads.
        hub = get_hub_if_exists()
        for waiter_hub, event, _ in waiters:
            if waiter_hub is hub:
                event.set()

    def _abandon_after_fork(self, lost: list[_Task]) -> None:
        for task in lost:
            task.abandon(
                RuntimeError(
                    "this task was queued or running in a worker thread when the process "
                    "forked; the thread does not exist in the child, so it never finished"
                )
            )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<{type(self).__name__} {state} threads={self._threads}/{self._maxsize} "
            f"queued={len(self._queue)} unfinished={len(self._unfinished)}>"
        )


_pools: weakref.WeakSet[_WorkerThreads] = weakref.WeakSet()
_fork_hook_installed = False


def _track_for_fork(pool: _WorkerThreads) -> None:
    # Registered on first use, not at import: importing greenpatch must not
    # change process-wide state.
    global _fork_hook_installed
    if not _fork_hook_installed and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_reset_pools_after_fork)
        _fork_hook_installed = True
    _pools.add(pool)


def _reset_pools_after_fork() -> None:
    for pool in list(_pools):
        pool._after_fork_in_child()


class _SpawnTask(_Task):
    """A ``ThreadPool.spawn`` call: its outcome goes to an AsyncResult in the hub."""

    __slots__ = ("delivered", "error", "outcome", "pool", "result")

    def __init__(self, pool: ThreadPool, call: Callable[[], Any]) -> None:
        super().__init__(call)
        self.pool = pool
        self.result = AsyncResult()
        self.outcome: tuple[bool, Any] | None = None
        self.error: BaseException | None = None
        self.delivered = False

    def execute(self) -> None:
        call, self.call = self.call, None
        assert call is not None
        try:
            self.outcome = (True, call())
        except BaseException as exc:  # reported to the waiter, whatever it is
            self.outcome = (False, exc)
        self.pool.hub.loop.run_callback_threadsafe(self.pool._deliver, self)

    def abandon(self, error: BaseException) -> None:
        loop = self.pool.hub.loop
        if not loop.closed:
            self.error = error
            # _deliver ignores this when the outcome was delivered meanwhile.
            loop.run_callback_threadsafe(self.pool._deliver, self)


class ThreadPool(_WorkerThreads):
    """Up to ``maxsize`` OS threads running blocking calls for the greenlets of one hub.

    Results are delivered to the hub of the thread that made the pool (or to
    ``hub``); ``spawn`` must be called in that thread.
    """

    def __init__(
        self,
        maxsize: int = DEFAULT_MAXSIZE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        hub: Hub | None = None,
    ) -> None:
        self.hub = hub if hub is not None else get_hub()
        super().__init__(maxsize, idle_timeout)

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> AsyncResult:
        """Run ``fn(*args, **kwargs)`` on a worker thread; return its ``AsyncResult``.

        The result is set (or fails with what ``fn`` raised) in the hub's thread.
        While it is pending the hub's loop stays alive, so waiting on it never
        raises ``LoopExit``.
        """
        hub = self.hub
        if _get_ident() != hub.thread_ident:
            raise RuntimeError(
                f"ThreadPool.spawn was called from thread {_get_ident()}, but the pool "
                f"delivers results to the hub of thread {hub.thread_ident}; call it from that "
                "thread, use a pool made in this thread, or use ThreadPoolExecutor.submit"
            )
        task = _SpawnTask(self, functools.partial(fn, *args, **kwargs))
        hub.loop.ref()
        try:
            self._enqueue(task)
        except BaseException:
            hub.loop.unref()
            raise
        return task.result

    def _deliver(self, task: _SpawnTask) -> None:
        """In the hub: set the task's result once (a fork may queue a second try)."""
        if task.delivered:
            return
        task.delivered = True
        if self.hub._destroyed:
            # Its greenlets are abandoned; the loop may live on under the next
            # main hub, which must not switch into them.  Only the ref is owed.
            if not self.hub.loop.closed:
                self.hub.loop.unref()
            return
        outcome = task.outcome
        if outcome is None:  # abandoned: never ran, or its thread was lost in a fork
            error = task.error
            outcome = (False, error if error is not None else RuntimeError("task lost"))
        try:
            if outcome[0]:
                task.result.set(outcome[1])
            else:
                task.result.set_exception(outcome[1])
        finally:
            if not self.hub.loop.closed:
                self.hub.loop.unref()

    def apply(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...] = (),
        kwds: dict[str, Any] | None = None,
    ) -> T:
        """Call ``fn(*args, **kwds)`` on a worker and wait for it; return or raise its outcome.

        Runs the call directly instead when waiting cooperatively is impossible or
        pointless: in the hub greenlet itself (a loop callback), or in a thread
        other than the hub's (a worker of this pool applying again would otherwise
        deadlock once every worker waits for another).
        """
        if kwds is None:
            kwds = {}
        if _get_ident() != self.hub.thread_ident or getcurrent() is self.hub:
            return fn(*args, **kwds)
        return self.spawn(fn, *args, **kwds).get()  # type: ignore[no-any-return]

    def _abandon_after_fork(self, lost: list[_Task]) -> None:
        # Only the forking thread survives: a pool of another thread's hub has
        # nobody left to deliver to (and that hub's loop must not be woken).
        if self.hub is get_hub_if_exists():
            super()._abandon_after_fork(lost)
            return
        # That hub's thread is gone.  Its loop may still be adopted in the child
        # (the default loop, see hub._reinit_after_fork): give back the refs
        # spawn() took, or the adopting hub could never find itself idle.
        loop = self.hub.loop
        if not loop.closed:
            for task in lost:
                if isinstance(task, _SpawnTask) and not task.delivered:
                    task.delivered = True
                    loop.unref()

    def __enter__(self) -> ThreadPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True)


def get_threadpool() -> ThreadPool:
    """The default ``ThreadPool`` of the calling thread's hub (made on first use)."""
    hub = get_hub()
    state = hub.module_state
    pool: ThreadPool | None = state.get(_STATE_KEY)
    if pool is None or pool.closed:
        pool = state[_STATE_KEY] = ThreadPool(DEFAULT_MAXSIZE, DEFAULT_IDLE_TIMEOUT, hub)
        # The pool lives and dies with its hub (one hook, whatever the pools).
        if _kill_default_pool not in hub.destroy_hooks:
            hub.destroy_hooks.append(_kill_default_pool)
    return pool


#: Where the default pool of a hub is kept (``Hub.module_state``).
_STATE_KEY = "greenpatch.hub.threadpool"


def _kill_default_pool(hub: Hub) -> None:
    pool: ThreadPool | None = hub.module_state.pop(_STATE_KEY, None)
    if pool is not None and not pool.closed:
        pool.kill()
