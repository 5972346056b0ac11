"""``Event`` and ``AsyncResult``, and the parking protocol every primitive here uses.

Parking
-------
A greenlet that must wait *parks*: it puts an entry ``(hub, token)`` on the
primitive's waiter deque and leaves through the one door, ``Hub.switch()``.
``token`` is a resume token, ``[greenlet]`` (see ``hub.resume``), made by the
waiter itself.  A waker never hands anything over and never switches: it takes the
entry out of the deque and queues the token on the waiter's hub.  The woken
greenlet then looks at the primitive again and takes what it came for.
(Semaphores queue their acquirers a little differently, under a lock, so that
the woken greenlet can take its slot itself; see ``locks.py``.)

Whoever takes an entry out of the deque owns it.  A waiter whose wait ends
early (its timer fired, or ``kill``/``Timeout`` threw into it) tries to remove
its entry: if that works, nobody woke it and nothing was consumed; if the entry
is gone, a waker got there first and the wait succeeded (the event was set,
even if the waiter's timer fired as well).  Either way the waiter
then clears its token, which turns any resume still queued -- or about to be
queued by another thread -- into a no-op.  That is why the waiter makes the
token: every resume that could ever reach this wait goes through an object the
waiter can reach and clear, so none can hit the greenlet later, in the middle
of unrelated work.  The timeout timer resumes the waiter with the private
``_TIMED_OUT`` value and is cancelled in ``finally``.

Entries are plain tuples, not objects: a set/wait round trip makes two of them,
and a tuple costs a third of a slotted instance (``Event`` ping-pong is a
benchmark against gevent).

Cross-thread wake-ups
---------------------
A primitive may be used by greenlets of several OS threads (one hub each) and by
plain threads.  The waker compares the entry's ``hub.thread_ident`` with its
own thread: the same thread appends the resume entry ``(resume, token)`` to the
hub's callback queue, as ``Hub.schedule_resume`` does, so ``Hub.switch`` can
hand off to the woken greenlet directly; another thread goes through
``hub.loop.run_callback_threadsafe``, whose async watcher makes that hub's
blocked loop return.  Shared state is guarded by a real ``_thread`` lock held
for a few bytecodes and never across a switch; ``Event.wait`` needs no lock at
all (see ``_Linkable._park``).  ``_thread`` functions are bound at import so
that a later monkey-patch of ``threading``/``_thread`` cannot make them green.
"""

from __future__ import annotations

from _thread import allocate_lock
from _thread import get_ident as _real_get_ident
from collections import deque
from typing import Any, Callable

from greenlet import getcurrent

from greenpatch.hub._process import other_thread_count as _other_thread_count
from greenpatch.hub.hub import Hub, get_hub, resume
from greenpatch.hub.loop import TimerHandle
from greenpatch.hub.timeout import Timeout, wait_until_timeout

__all__ = ["AsyncResult", "Event"]

Link = Callable[[Any], Any]


#: A parked wait: the waiter's hub and its resume token ``[greenlet]``.
_Entry = tuple[Hub, list[Any]]

#: What the timeout timer resumes a waiter with; nothing else sends it.
_TIMED_OUT: Any = object()


def _resume_token(token: list[Any]) -> None:
    """Loop callback for a cross-thread wake-up; a cleared token does nothing."""
    if token:
        token[0].switch()


def _expire(token: list[Any]) -> None:
    """Timer callback: end a wait that ran out of time."""
    if token:
        token[0].switch(_TIMED_OUT)


def _wake(hub: Hub, token: list[Any], ident: int) -> None:
    """Queue the resume of a parked greenlet; ``ident`` is the calling thread's."""
    if hub.thread_ident == ident:
        hub._callbacks.append((resume, token))  # Hub.schedule_resume, minus a call
    else:
        hub.loop.run_callback_threadsafe(_resume_token, token)


def _needs_keep_alive(hub: Hub) -> bool:
    """Whether a wait without a timeout on ``hub`` could be ended by another OS thread.

    Always for a hub outside the main thread (the main thread exists).  For
    the main thread's hub (the one with libev's default loop), when
    ``other_thread_count()`` sees another thread: that counts real threads only,
    not the green "threads" of a patched ``threading`` (greenlets on this very
    hub), but also not a thread that ``_thread.start_new_thread`` has started
    and that has not begun to run yet.
    """
    return not hub.loop.default or _other_thread_count() > 0


#: How often a keep-alive looks whether other OS threads still exist.
KEEP_ALIVE_CHECK_SECONDS = 1.0


class _KeepAlive:
    """A pending timer that keeps a loop alive while other OS threads exist (see ``_arm``)."""

    __slots__ = ("handle", "hub")

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.handle = hub.loop.call_later(KEEP_ALIVE_CHECK_SECONDS, self._check)

    def _check(self) -> None:
        if _needs_keep_alive(self.hub):
            self.handle = self.hub.loop.call_later(KEEP_ALIVE_CHECK_SECONDS, self._check)
        # Else let it lapse: the other threads are gone, and if nothing else can
        # wake the waiter the hub raises LoopExit after all.

    def cancel(self) -> None:
        self.handle.cancel()


def _arm(hub: Hub, token: list[Any], timeout: float | None) -> TimerHandle | _KeepAlive | None:
    """Start the timer of a wait: its timeout, or a keep-alive if other threads exist.

    Why a keep-alive: a greenlet blocked on a primitive that only another OS
    thread will release has nothing on its own loop that could wake it (the
    cross-thread async watcher does not count), so the hub would raise LoopExit
    at once.  While another OS thread exists (``_needs_keep_alive``, checked
    again every ``KEEP_ALIVE_CHECK_SECONDS``), a wait without a timeout
    therefore keeps a pending timer on the loop, cancelled when the wait ends.
    The trade-off: a genuine deadlock while some unrelated thread is alive (a
    thread pool's idle worker, a monitor) hangs instead of raising LoopExit,
    until that thread is gone; and a thread started only after the wait began
    does not count.  Rejected: always keeping the loop alive (then every
    single-thread deadlock hangs too).  A timer rather than ``loop.ref()``: it
    is a heap entry, with no cffi call, ``Loop.run_once`` counts pending timers
    itself after an iteration's callbacks, and it can look at the threads again
    later; a ref is only seen by libev's next poll, and loops that judged
    liveness by the poll at the start of the iteration missed a ref taken by a
    greenlet that parked later in it.
    """
    if timeout is not None:
        return hub.loop.call_later(timeout, _expire, token)
    if _needs_keep_alive(hub):
        return _KeepAlive(hub)
    return None


def _schedule(hub: Hub, callback: Callable[..., Any], *args: Any) -> None:
    """Run ``callback(*args)`` in ``hub``'s thread, from whichever thread we are in."""
    if hub.thread_ident == _real_get_ident():
        hub.loop.run_callback(callback, *args)
    else:
        hub.loop.run_callback_threadsafe(callback, *args)


class _Linkable:
    """Base of the waitable primitives: a lock, parked waiters, and links.

    Subclasses define ``ready()``.  When they become ready they call
    ``_notify_all()`` with ``_lock`` held and *after* the state change: every
    parked waiter is woken and every link is scheduled.
    """

    __slots__ = ("__weakref__", "_links", "_lock", "_waiters")

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._waiters: deque[_Entry] = deque()
        self._links: list[tuple[Link, Hub]] | None = None

    def ready(self) -> bool:
        raise NotImplementedError

    # -- links ----------------------------------------------------------------
    def rawlink(self, callback: Link) -> None:
        """Call ``callback(self)`` in this thread's hub each time ``self`` becomes ready.

        If it is ready already, the call is scheduled now.  The link stays until
        ``unlink``; it runs in the hub, so it must not block.
        """
        if not callable(callback):
            raise TypeError(f"expected a callable, got {callback!r}")
        hub = get_hub()
        with self._lock:
            if self._links is None:
                self._links = []
            self._links.append((callback, hub))
            if self.ready():
                hub.loop.run_callback(self._run_link, callback)

    def unlink(self, callback: Link) -> None:
        """Remove a link added by ``rawlink``; a call already scheduled is dropped too."""
        with self._lock:
            links = self._links
            if links:
                for index, (linked, _) in enumerate(links):
                    if linked == callback:
                        del links[index]
                        return

    def _run_link(self, callback: Link) -> None:
        with self._lock:
            links = self._links
            linked = links is not None and any(linked == callback for linked, _ in links)
        if linked:
            callback(self)

    def _notify_all(self) -> None:
        """Wake every parked waiter, oldest first, and schedule every link.  Lock held."""
        waiters = self._waiters
        if waiters:
            ident = _real_get_ident()
            popleft = waiters.popleft
            # popleft, not iteration: a waiter that gives up removes its entry
            # without the lock, and each entry must have exactly one owner.
            try:
                while waiters:
                    hub, token = popleft()
                    _wake(hub, token, ident)
            except IndexError:  # the last waiter left between check and pop
                pass
        if self._links:
            self._schedule_links()

    def _schedule_links(self) -> None:
        """Schedule every link in its hub.  Lock held."""
        for callback, hub in self._links or ():
            _schedule(hub, self._run_link, callback)

    # -- waiting --------------------------------------------------------------
    def _park(self, timeout: float | Timeout | None) -> bool:
        """Block until ``ready()`` or ``_notify_all``; False when ``timeout`` passed first.

        Lock-free on the waiter's side.  It relies on deque append, remove and
        popleft being atomic, and on the order "waiter: append, then check
        ready()" against "notifier: become ready, then pop the waiters": either
        the waiter sees ready, or its entry is still queued when the notifier
        pops.  After a resume, "my entry is gone" means "a notifier took it";
        the deque is usually empty by then, so the check is cheap.

        ``timeout`` may be a ``Timeout`` object (gevent accepts one): it bounds
        the wait and is cancelled when the wait ends.
        """
        if isinstance(timeout, Timeout):
            if self.ready():
                return True
            return wait_until_timeout(timeout, lambda: self._park(None))[0]
        if timeout is not None and timeout <= 0:
            return self.ready()
        hub = get_hub()
        token = [getcurrent()]
        entry = (hub, token)
        waiters = self._waiters
        waiters.append(entry)
        if self.ready():
            self._unpark(entry)
            return True
        timer = _arm(hub, token, timeout)
        try:
            switch = hub.switch
            while entry in waiters:  # a stray resume (none should come) does not end the wait
                if switch() is _TIMED_OUT:
                    return self._unpark(entry) or self.ready()
        except BaseException:
            self._unpark(entry)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        token.clear()
        return True

    def _unpark(self, entry: _Entry) -> bool:
        """End a wait that was not (yet) woken; return whether a notifier took it."""
        try:
            self._waiters.remove(entry)
        except ValueError:
            # A notifier popped it: its resume is queued, or about to be from
            # another thread.  Clearing our token makes that resume a no-op.
            entry[1].clear()
            return True
        return False


class Event(_Linkable):
    """A flag greenlets (and threads) can wait for, like ``threading.Event``.

    ``wait()`` returns True once the flag is set, even if it was cleared again
    before the waiter ran; waiters are woken in the order they started waiting.
    """

    __slots__ = ("_flag",)

    def __init__(self) -> None:
        super().__init__()
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set

    def ready(self) -> bool:
        """Same as ``is_set()``; lets ``iwait`` and friends wait on events."""
        return self._flag

    def set(self) -> None:
        """Set the flag and wake every waiter; callable from any thread or the hub."""
        lock = self._lock
        lock.acquire()  # not ``with``: this is the hot path, and ``with`` costs twice as much
        try:
            if not self._flag:
                self._flag = True
                # _notify_all, inlined: half of every set/wait round trip.
                waiters = self._waiters
                if waiters:
                    ident = _real_get_ident()
                    popleft = waiters.popleft
                    try:
                        while waiters:
                            hub, token = popleft()
                            if hub.thread_ident == ident:
                                hub._callbacks.append((resume, token))
                            else:
                                hub.loop.run_callback_threadsafe(_resume_token, token)
                    except IndexError:  # the last waiter left between check and pop
                        pass
                if self._links:
                    self._schedule_links()
        finally:
            lock.release()

    def clear(self) -> None:
        self._flag = False

    def wait(self, timeout: float | Timeout | None = None) -> bool:
        """Block until the flag is set; return False if ``timeout`` seconds pass first.

        ``timeout`` may be a ``Timeout`` object, as in gevent.
        """
        if self._flag:
            return True
        if timeout is not None:
            return self._park(timeout)
        hub = get_hub()
        if not hub.loop.default or _other_thread_count():  # _needs_keep_alive(hub)
            return self._park(None)
        # _park, inlined for its most common case (no timer at all): the
        # path of every set/wait ping-pong, where each call shows.
        token = [getcurrent()]
        entry = (hub, token)
        waiters = self._waiters
        waiters.append(entry)
        if self._flag:
            self._unpark(entry)
            return True
        try:
            switch = hub.switch
            while entry in waiters:
                switch()
        except BaseException:
            self._unpark(entry)
            raise
        token.clear()
        return True

    def __repr__(self) -> str:
        state = "set" if self._flag else "unset"
        return f"<{type(self).__name__} {state} waiters={len(self._waiters)} at {id(self):#x}>"


_ExcInfo = tuple[type[BaseException], BaseException, Any]


class AsyncResult(_Linkable):
    """A value (or an exception) that will be delivered later, to any number of waiters.

    It also answers the ``concurrent.futures.Future`` questions: ``result()``,
    ``done()``, ``add_done_callback()``; ``exception`` is a property (as on
    ``Greenlet``), ``exc_info`` holds the full triple.  It can be passed to
    ``Greenlet.link`` to receive the greenlet's outcome.
    """

    __slots__ = ("_exc_info", "_flag", "_value")

    def __init__(self) -> None:
        super().__init__()
        self._flag = False
        self._value: Any = None
        self._exc_info: _ExcInfo | None = None

    # -- delivering -----------------------------------------------------------
    def set(self, value: Any = None) -> None:
        """Store ``value`` and wake every waiter (a later set overwrites it)."""
        with self._lock:
            self._value = value
            self._exc_info = None
            self._become_ready()

    def set_exception(self, exc: BaseException, exc_info: _ExcInfo | None = None) -> None:
        """Store ``exc`` (re-raised by ``get``) and wake every waiter.

        ``exc_info`` is a ``sys.exc_info()`` triple; pass it to keep a traceback.
        """
        if exc_info is None:
            exc_info = (type(exc), exc, exc.__traceback__)
        with self._lock:
            self._value = None
            self._exc_info = exc_info
            self._become_ready()

    def _become_ready(self) -> None:
        if not self._flag:
            self._flag = True
            if self._waiters or self._links:
                self._notify_all()

    def __call__(self, source: Any) -> None:
        """Take the outcome of a finished ``Greenlet`` (use as ``glet.link(result)``)."""
        if source.successful():
            self.set(source.value)
        else:
            exc_info = source.exc_info
            self.set_exception(exc_info[1], exc_info)

    # -- state ----------------------------------------------------------------
    def ready(self) -> bool:
        return self._flag

    def successful(self) -> bool:
        return self._flag and self._exc_info is None

    done = ready

    @property
    def value(self) -> Any:
        """The stored value, or None (not ready, or an exception was stored)."""
        return self._value

    @property
    def exception(self) -> BaseException | None:
        """The stored exception, or None."""
        return self._exc_info[1] if self._exc_info is not None else None

    @property
    def exc_info(self) -> _ExcInfo | None:
        return self._exc_info

    # -- waiting --------------------------------------------------------------
    def get(self, block: bool = True, timeout: float | Timeout | None = None) -> Any:
        """Return the value or raise the stored exception.

        Raises ``greenpatch.Timeout`` when the result is not there in time
        (at once with ``block=False``).
        """
        if not self._flag:
            if not block:
                raise Timeout(0)
            if not self._park(timeout):
                # gevent raises a Timeout object passed as ``timeout`` itself.
                raise timeout if isinstance(timeout, Timeout) else Timeout(timeout)
        return self._outcome()

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def wait(self, timeout: float | Timeout | None = None) -> Any:
        """Block until ready or ``timeout``; return the value (None if none or not ready)."""
        if not self._flag:
            self._park(timeout)
        return self._value

    def result(self, timeout: float | None = None) -> Any:
        """``Future.result``: like ``get`` but raises ``concurrent.futures.TimeoutError``."""
        if not self._flag and not self._park(timeout):
            # Imported here: concurrent.futures is not part of the light core.
            from concurrent.futures import TimeoutError as FuturesTimeoutError

            raise FuturesTimeoutError(f"no result within {timeout} seconds")
        return self._outcome()

    def _outcome(self) -> Any:
        exc_info = self._exc_info
        if exc_info is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        return self._value

    # -- Future compatibility -------------------------------------------------
    def cancel(self) -> bool:
        """Always False: a greenpatch result cannot be cancelled."""
        return False

    def cancelled(self) -> bool:
        return False

    def add_done_callback(self, fn: Callable[[AsyncResult], Any]) -> None:
        """Call ``fn(self)`` once done: now if done already, else in the hub."""
        if self._flag:
            fn(self)
        else:
            self.rawlink(fn)

    def __repr__(self) -> str:
        if not self._flag:
            state = "pending"
        elif self._exc_info is not None:
            state = f"exception={self._exc_info[1]!r}"
        else:
            state = f"value={self._value!r}"
        return f"<{type(self).__name__} {state} at {id(self):#x}>"
