"""The cooperative I/O core: greenlets waiting on descriptors (the socket calls built on
that are in ``socket_calls.py``).

Everything in greenpatch that waits for a descriptor waits here: the green
``socket`` and ``ssl`` of the patcher, ``select``/``poll``/``selectors``, the
servers' sockets, ``wait_read``/``wait_write``.  One copy means one set of
semantics: how a wait ends, what a timeout raises, what ``close()`` does to the
greenlets still waiting.

Wait queues: any number of waiters per descriptor
-------------------------------------------------
A socket keeps one ``IoWaitQueue`` per direction (and hub), itself a libev io
watcher, however many greenlets wait on that socket.  The watcher is active
while someone waits.
When the descriptor becomes ready, the queue wakes its *first* waiter (FIFO),
switching to it at once; the others stay queued.  libev's watchers are
level-triggered, so while the descriptor stays ready and others wait, the next
loop iteration wakes the next one: no wake-up is lost when the first waiter
does not consume what arrived, nor when it is killed or times out, and one
arriving connection wakes one of ten ``accept()``-ing threads, not all ten.
This is how the kernel treats threads blocked in ``accept`` or ``recv`` on one
socket (each gets its turn, none is stranded), and it is what code written for
threads expects once ``patch_all()`` makes its threads greenlets.  Two greenlets
reading the same stream socket both work; which bytes each gets depends, as
with threads, on who is first in line when they arrive.

A waiter leaves the queue however its wait ends -- readiness, its own timeout,
a kill, the descriptor's close -- and the last one out stops the watcher.  One
waiter's timeout therefore never stops the watcher another waiter relies on.
A greenlet woken by readiness usually waits again before it gives the hub
control back (read, answer, read): the watcher then stays as it is, and is
stopped only if nobody waits by the time the hub runs again, so an idle socket
never keeps the loop alive.
(Rejected: one watcher per waiting greenlet, which is what libev offers
directly.  It also works, but costs a watcher allocation and several cffi
crossings per wait, and ten ``accept()``-ers would all wake for each
connection.)

A queue belongs to one open *file*, not to a descriptor number: its watcher is
reused from wait to wait without telling libev again, which is only right
while the number still names the same file.  So a socket owns its queues and
retires them when it closes; a wait on a bare descriptor (``wait_read``,
``select``) makes a queue for that wait alone.  (Rejected: one queue per
descriptor number in a per-hub table.  Numbers are reused as soon as they are
closed, by code that never tells us, and libev, finding the same interest on
the same number, would not register the new file: its waiters would hang.)

Bad descriptors
---------------
A descriptor that is closed when libev would register it makes the watcher
fail (``IoWatcher.error``, see ``_libev_build.py``) instead of aborting the
process; every waiter of the queue then gets ``OSError(EBADF)``, the error a
blocking call on a closed descriptor gives.

Closing
-------
``cancel_fd_waits(fd)`` -- which every close of a socket calls before the
descriptor is released -- wakes every greenlet of this thread's hub waiting on
``fd`` (found through the loop's own list of io watchers per descriptor, so
nothing is recorded per wait) with ``SocketClosedError`` (an ``OSError`` with
``EBADF``): the number may be reused at once by an unrelated open, so a waiter
must neither hang nor wake for the new file.  (CPython leaves a thread blocked in ``recv`` on Linux
blocked when another thread closes the socket; waking it with EBADF is the
documented difference, and what every green library does.)

The socket calls (``hub/socket_calls.py``)
------------------------------------------
``CooperativeIO`` is the one implementation of the blocking socket calls over a
descriptor kept non-blocking in the kernel: try the system call; when the kernel
says "would block", give up at once for a timeout of 0, else wait on the queue
and try again, all under **one deadline per call** (a ``recv`` with a 5 s
timeout gives up 5 s after it began, however many times it woke).  ``sendall``
counts what was sent in bytes, whatever the buffer's item size.  The green
socket of the patcher (a subclass of the stdlib's) and the servers' socket
wrapper both build on it.

Loops that poll
---------------
A call answered without waiting does not pass through the hub.  A thread that
repeats such a call for ever -- ``select`` on a socket that is always writable,
``recv`` on a stream that has ended (b"" at once, every time) -- never let the
other threads run: OS threads are preempted every 5 ms, greenlets are not, and
the peer such a loop waits for (a server in another patched thread) never ran.
So such answers yield to the hub (``sleep(0)``: ready greenlets and ready I/O
run).  A read at the end of a stream does so every time
(``yield_after_end_of_stream``): a program reads it once per stream, so that
costs one hub round trip per stream, and a loop that reads it for ever gets one
read per turn of the loop, as fair as the OS would be (yielding every 64th
time, the first version, let such a loop take most of the process's time:
urllib3 1.26's suite ran 2.5 times slower behind one).  A ``select``/``poll``
that finds something ready (or has a timeout of 0) is a hot path of every
server, so only every ``ANSWER_YIELD_EVERY``-th one yields
(``yielded_now_and_then``).  A read that returned data never yields:
streaming costs nothing.  Rejected: preempting a spinning thread from a timer
(a switch at any bytecode, inside greenpatch's own bookkeeping too).
"""

from __future__ import annotations

import errno
import socket as _socket
from typing import Any, Union

from greenlet import getcurrent

from greenpatch.hub.hub import Hub, get_hub, get_hub_if_exists, hub_of_this_thread
from greenpatch.hub.watchers import EV_ERROR, READ, WRITE, IoWatcher

__all__ = [
    "READ",
    "WRITE",
    "IoWaitQueue",
    "SocketClosedError",
    "SocketTimeout",
    "cancel_fd_waits",
    "wait_any",
    "wait_once",
    "wait_read",
    "wait_write",
    "waiting_fds",
    "yield_after_end_of_stream",
    "yielded_now_and_then",
]

if issubclass(_socket.timeout, TimeoutError):  # Python 3.10+: one and the same
    SocketTimeout: type[OSError] = _socket.timeout
else:  # Python 3.9: socket.timeout is an OSError of its own

    class SocketTimeout(_socket.timeout, TimeoutError):  # type: ignore[no-redef, misc]
        """``socket.timeout`` that is also a ``TimeoutError``, as on Python 3.10+."""


class SocketClosedError(OSError):
    """The descriptor was closed (by another greenlet, or the server) while a greenlet waited."""

    def __init__(self, message: str = "socket closed while a greenlet waited on it") -> None:
        super().__init__(errno.EBADF, f"Bad file descriptor: {message}")


def _bad_descriptor(fd: int) -> OSError:
    return OSError(errno.EBADF, f"Bad file descriptor ({fd} was closed while watched)")


#: What a timed wait raises: an exception, or the message of a ``SocketTimeout``.
TimeoutSpec = Union[BaseException, str]

# MSG_DONTWAIT on a blocking socket (timeout None) says "fail rather than wait".
_DONTWAIT = getattr(_socket, "MSG_DONTWAIT", 0)
_UNSET: Any = object()
_TIMED_OUT_MESSAGES = ("timed out", "timed out")


# Wait tokens.  One greenlet's place in one or more queues is a one-item list ``[greenlet]``,
# emptied (``[None]``) once its wait is over, so that a wake-up queued for a
# wait that ended meanwhile (a timeout and a close in the same iteration) does
# nothing.  A list rather than a small class: making one is a C call, where a
# class costs a Python ``__init__`` on every socket wait.  Two tokens are
# equal only when both are over or both hold the same greenlet, which waits
# once at a time, so ``list.remove`` finds the right one.


def _throw(wait: list[Any], error: TimeoutSpec) -> None:
    """Loop callback: end ``wait`` with ``error``, if it is still going on."""
    glet = wait[0]
    if glet is not None:
        wait[0] = None
        glet.throw(SocketTimeout(error) if isinstance(error, str) else error)


class IoWaitQueue(IoWatcher):
    """The greenlets of one hub waiting for one descriptor to be ready one way.

    ``wait()`` blocks the calling greenlet until its turn comes.  Whoever makes
    a queue owns it and ``close()``-s it when the descriptor goes away (or the
    queue is no longer needed); see the module docstring.

    The queue *is* its libev io watcher (a subclass), active while someone
    waits: when the loop reports the descriptor ready it calls the queue's own
    ``_fire``, which switches to the first waiter.  (Rejected: a queue holding
    a watcher whose callback was the queue's method, the first design.  Every
    wake-up then went through two Python calls, the watcher's ``_fire`` and the
    callback, the second nested in C by the ``callback(*args)`` call: one
    frame more per wake-up, and a deeper C stack for greenlet to copy at the
    switch that follows.  It also cost a second object per socket direction.)
    """

    __slots__ = ("_fd", "_waiters", "hub")

    def __init__(self, fd: int, events: int, hub: Hub | None = None) -> None:
        hub = hub if hub is not None else get_hub()
        super().__init__(hub.loop, fd, events)
        self.hub = hub
        self._fd = fd  # IoWatcher.fd reads the C struct, which close() frees
        self._waiters: list[list[Any]] = []

    # -- waiting ---------------------------------------------------------------
    def wait(self, timeout: float | None = None, timeout_exc: TimeoutSpec = "timed out") -> bool:
        """Block until the descriptor is ready and it is our turn.

        Returns True when woken by readiness, False after a stray resume (a
        spurious wake-up: callers try their call again either way).  Raises
        ``timeout_exc`` after ``timeout`` seconds (a string: a
        ``SocketTimeout`` with that message), ``OSError(EBADF)`` when the
        descriptor turns out to be closed, ``SocketClosedError`` when it is
        closed through ``cancel_fd_waits`` meanwhile.
        """
        if self._c is None:
            raise SocketClosedError()
        wait = [getcurrent()]
        self._waiters.append(wait)
        if not self._id:
            self.start(self._fire, 0)
        if timeout is None:
            # The hot path of every server (read, answer, wait): no timer.
            try:
                self.hub.switch()
            except BaseException:
                self._leave(wait)
                raise
        else:
            timer = self.hub.loop.call_later(timeout, _throw, wait, timeout_exc)
            try:
                self.hub.switch()
            except BaseException:
                self._leave(wait)
                raise
            finally:
                timer.cancel()
        if wait[0] is not None:
            # Resumed by someone else (a stray switch): a spurious wake-up, which
            # every caller handles by trying its call again.
            self._leave(wait)
            return False
        return True

    def _join(self, wait: list[Any]) -> None:
        """Put ``wait`` (a token) in line, for a caller that switches away itself."""
        self._waiters.append(wait)
        if not self._id:
            self.start(self._fire, 0)

    def _fire(self, revents: int) -> None:
        """The loop found the descriptor ready: wake the first waiter still waiting."""
        if revents & EV_ERROR:
            # libev (or the glue's check of closed descriptors) stopped the
            # watcher already; say so on this side too (as IoWatcher does).
            self.error = True
            self.stop()
            self._end_all(_bad_descriptor(self._fd))
            return
        waiters = self._waiters
        while waiters:
            wait = waiters.pop(0)
            glet = wait[0]
            if glet is not None:  # else: a wait that ended otherwise, left behind
                wait[0] = None
                glet.switch()
                # Back in the hub.  The woken greenlet usually waits here again
                # before it lets the hub run (read, answer, read): the watcher
                # stays as it is.  Otherwise nobody needs it any more.
                if not self._waiters and self._id:
                    self.stop()
                return
        self.stop()

    def _leave(self, wait: list[Any]) -> None:
        wait[0] = None
        waiters = self._waiters
        try:
            waiters.remove(wait)
        except ValueError:
            pass  # already taken off by a wake-up or a close
        if not waiters and self._id:
            self.stop()

    def _end_all(self, error: BaseException) -> int:
        waiters, self._waiters = self._waiters, []
        if self._id:
            self.stop()
        run_callback = self.hub.loop.run_callback
        count = 0
        for wait in waiters:
            if wait[0] is not None:
                run_callback(_throw, wait, error)
                count += 1
        return count

    # -- ending ----------------------------------------------------------------
    def cancel(self, error: BaseException | None = None) -> int:
        """Wake every waiter with ``error`` (``SocketClosedError``); returns how many.

        Call from the queue's own thread.  The queue stays usable.
        """
        return self._end_all(error if error is not None else SocketClosedError())

    def close(self, error: BaseException | None = None) -> int:  # type: ignore[override]
        """Cancel the waits and retire the queue; returns how many waits ended."""
        if self._c is None:
            return 0
        count = self.cancel(error)
        super().close()
        return count

    @property
    def waiting(self) -> int:
        """How many greenlets wait here now."""
        return sum(1 for wait in self._waiters if wait[0] is not None)

    def __repr__(self) -> str:
        if self._c is None:
            return f"<IoWaitQueue fd={self._fd} closed>"
        way = "read" if self.events == READ else "write"
        return f"<IoWaitQueue fd={self._fd} {way} {self.waiting} waiting>"


def cancel_fd_waits(fd: int, error: BaseException | None = None) -> int:
    """Wake every greenlet of this thread's hub waiting on ``fd`` with ``error``.

    Call it *before* closing a descriptor others may wait on: a waiter left on a
    closed descriptor would hang, or wake on whatever reuses the number.  The
    default error is ``SocketClosedError`` (EBADF).  Returns how many waits ended.
    Waits through ``Hub.wait`` are ended too; io watchers nobody waits on (a
    user's own) are left alone.
    """
    hub = get_hub_if_exists()
    if hub is None or hub.loop.closed:
        return 0
    if error is None:
        error = SocketClosedError()
    count = 0
    for watcher in hub.loop.io_watchers(fd):
        if isinstance(watcher, IoWaitQueue):
            count += watcher.cancel(error)
        elif watcher.waiter is not None:
            count += hub.cancel_wait(watcher, error)
    return count


def waiting_fds() -> list[int]:
    """The descriptors greenlets of this thread's hub wait on, sorted (for leak checks)."""
    hub = get_hub_if_exists()
    if hub is None or hub.loop.closed:
        return []
    loop = hub.loop
    # A queue's watcher stays active while the greenlet it woke runs (until
    # that one gives the hub control back): count waiters, not watchers.
    return [
        fd
        for fd in loop.watched_fds()
        if any(_has_waiters(watcher) for watcher in loop.io_watchers(fd))
    ]


def _has_waiters(watcher: IoWatcher) -> bool:
    return watcher.waiting > 0 if isinstance(watcher, IoWaitQueue) else True


def wait_once(
    fd: int, events: int, timeout: float | None = None, timeout_exc: TimeoutSpec = "timed out"
) -> bool:
    """``wait_read``/``wait_write`` (``events``), saying whether readiness woke it:
    True, or False after a stray resume (see ``IoWaitQueue.wait``)."""
    queue = IoWaitQueue(fd, events)
    try:
        return queue.wait(timeout, timeout_exc)
    finally:
        queue.close()


def wait_read(
    fd: int, timeout: float | None = None, timeout_exc: TimeoutSpec = "timed out"
) -> None:
    """Block the current greenlet until ``fd`` is readable.

    Raises ``timeout_exc`` after ``timeout`` seconds (by default ``TimeoutError``
    "timed out"), ``OSError(EBADF)`` for a closed descriptor.
    """
    wait_once(fd, READ, timeout, timeout_exc)


def wait_write(
    fd: int,
    timeout: float | None = None,
    timeout_exc: TimeoutSpec = "timed out",
    event: object = None,
) -> None:
    """Block the current greenlet until ``fd`` is writable (see ``wait_read``).

    ``event`` is accepted for gevent's signature and ignored, as gevent ignores
    it (deprecated there since 1.1).
    """
    wait_once(fd, WRITE, timeout, timeout_exc)


def wait_any(interest: dict[int, int], timeout: float | None) -> bool:
    """Block until one of ``interest`` (fd -> READ|WRITE) may be ready, or ``timeout``.

    Returns False on timeout, True when woken by readiness (which the caller
    confirms with a non-blocking poll: the wake-up comes from one descriptor, so
    only the kernel can tell everything that is ready).  Raises ``OSError(EBADF)``
    when a descriptor turned out to be closed.  This is the wait under the green
    ``select``, ``poll`` and selectors.
    """
    hub = get_hub()
    wait = [getcurrent()]
    queues: list[IoWaitQueue] = []
    timer = None
    try:
        for fd, events in interest.items():
            for way in (READ, WRITE):
                if events & way:
                    queue = IoWaitQueue(fd, way, hub)
                    queues.append(queue)
                    queue._join(wait)
        if timeout is not None:
            timer = hub.loop.call_later(timeout, _time_out_quietly, wait)
        return hub.switch() is not _TIMED_OUT
    finally:
        wait[0] = None
        if timer is not None:
            timer.cancel()
        for queue in queues:
            queue.close()


_TIMED_OUT: Any = object()


def _time_out_quietly(wait: list[Any]) -> None:
    glet = wait[0]
    if glet is not None:
        wait[0] = None
        glet.switch(_TIMED_OUT)


# -- loops that poll ------------------------------------------------------------------
#: Answers that a loop may repeat for ever (see "Loops that poll"): every this
#: many, the caller yields to the hub first.
ANSWER_YIELD_EVERY = 64
_answers_without_wait = 0


def yielded_now_and_then() -> bool:
    """Count an answer given without waiting; on every ``ANSWER_YIELD_EVERY``-th,
    let the other greenlets run.  True when it did (a caller whose answer may be
    stale by then, such as ``select``, asks again)."""
    global _answers_without_wait
    _answers_without_wait += 1
    if _answers_without_wait < ANSWER_YIELD_EVERY:
        return False
    _answers_without_wait = 0
    hub = hub_of_this_thread()
    if hub is None or getcurrent() is hub:
        return False
    hub.sleep(0)
    return True


def yield_after_end_of_stream() -> None:
    """A read found the end of a stream: let the other greenlets run first."""
    hub = hub_of_this_thread()
    if hub is not None and getcurrent() is not hub:
        hub.sleep(0)
