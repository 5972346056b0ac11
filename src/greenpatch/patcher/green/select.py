"""Green ``select``: ``select.select`` and ``select.poll`` wait on the hub.

Ask the kernel first, wait on the hub, ask the kernel again
-------------------------------------------------------------
Both first call the original ``select``/``poll`` with a zero timeout.  That is
exact (every flag the kernel has: ``POLLHUP``, ``POLLNVAL``, exceptional
conditions), cheap when something is ready already, and gives the stdlib's own
errors for bad input (``OSError(EBADF)`` for a closed descriptor, ``ValueError``
for one past ``FD_SETSIZE``) before the hub is touched.  Only when nothing is
ready does the greenlet wait, in the hub's wait queues of the descriptors
(``greenpatch.hub.io.wait_any``).  A wake-up says "something may be ready", so
the kernel is asked once more for the exact answer; nothing there (another
greenlet took it) means waiting again for what is left of the timeout.

``epoll``
---------
An epoll object's own descriptor is readable while events are pending in it,
so the green ``epoll`` (a thin wrapper of the real one: registrations,
``fromfd``, ``close`` and the context manager are the kernel's) makes only
``poll()`` cooperative: ask without waiting, else wait on the hub for that one descriptor,
then ask again.  Libraries that pick epoll (``selectors.EpollSelector``, event
loops run in a thread) then let the other greenlets run instead of blocking the
hub.  (gevent removes ``epoll`` instead; ``aggressive=True`` still does.)

Exceptional conditions
----------------------
libev watches reading and writing only.  Out-of-band data (``select``'s third
list, ``poll``'s ``POLLPRI``) is watched through a private, edge-triggered epoll
set holding those descriptors for ``EPOLLPRI``: its own descriptor becomes
readable when one of them has an exceptional condition, and that descriptor is
what the hub waits on.  (Edge-triggered, so that a hang-up, which epoll always
reports, wakes the waiter once instead of keeping the set readable for ever.)
Where there is no epoll, exceptional descriptors are watched for reading, which
covers the usual case of urgent data arriving with normal data.

Loops that poll
---------------
An answer given without waiting (something was ready, or the timeout was 0)
does not pass through the hub.  A thread that loops on such answers -- a
relay that selects its two sockets for writing as well as reading, so the
kernel always says "writable" -- then never let the other threads run (with
OS threads the interpreter switches every 5 ms), and the peer it relays for
(a server in another patched thread) never answered.  So such answers go
through ``hub.io.yielded_now_and_then()`` (see "Loops that poll" there): now
and then one yields to the hub first, and then asks the kernel again, for an
answer as fresh as it would have been (``epoll`` returns the events it took:
the kernel reports an edge-triggered one once).
"""

from __future__ import annotations

import errno
import operator
import select as _stdlib
from collections.abc import Iterable
from time import monotonic
from typing import Any

from greenpatch.hub import get_hub
from greenpatch.hub.io import READ, WRITE, wait_any
from greenpatch.hub.io import yielded_now_and_then as _yielded_now_and_then

__target__ = "select"
__implements__ = ["select", "poll"]
if hasattr(_stdlib, "epoll"):
    __implements__.append("epoll")

_original_select = _stdlib.select
_original_poll = getattr(_stdlib, "poll", None)
_original_epoll: Any = getattr(_stdlib, "epoll", None)
error = _stdlib.error

POLLIN = getattr(_stdlib, "POLLIN", 1)
POLLPRI = getattr(_stdlib, "POLLPRI", 2)
POLLOUT = getattr(_stdlib, "POLLOUT", 4)
POLLERR = getattr(_stdlib, "POLLERR", 8)
POLLHUP = getattr(_stdlib, "POLLHUP", 16)
POLLNVAL = getattr(_stdlib, "POLLNVAL", 32)
_READ_MASK = POLLIN
_WRITE_MASK = POLLOUT
_FOREVER = 365 * 24 * 3600.0
_EPOLL_DEFAULT_MASK = (
    getattr(_stdlib, "EPOLLIN", 1)
    | getattr(_stdlib, "EPOLLPRI", 2)
    | getattr(_stdlib, "EPOLLOUT", 4)
)


def _fileno(obj: Any) -> int:
    if isinstance(obj, int):
        fd = obj
    else:
        try:
            fd = obj.fileno()
        except AttributeError:
            raise TypeError("argument must be an int, or have a fileno() method.") from None
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    return fd


class _ExceptionalWatch:
    """A private epoll set whose descriptor is readable when one of ``fds`` has
    an exceptional condition (see the module docstring); a context manager."""

    def __init__(self, fds: Iterable[int]) -> None:
        self.fd = -1
        self._epoll: Any = None
        wanted = set(fds)
        if not wanted or _original_epoll is None:
            return
        epoll = _original_epoll()
        try:
            for fd in wanted:
                try:
                    epoll.register(fd, _stdlib.EPOLLPRI | _stdlib.EPOLLET)
                except PermissionError:
                    pass  # a regular file: never an exceptional condition
        except BaseException:
            epoll.close()
            raise
        self._epoll = epoll
        self.fd = epoll.fileno()

    def drain(self) -> None:
        """Take the reported edges, so that the set is readable again only on a new one."""
        if self._epoll is not None:
            self._epoll.poll(0)

    def __enter__(self) -> _ExceptionalWatch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._epoll is not None:
            self._epoll.close()


def _wait_until(
    interest: dict[int, int],
    exceptional: Iterable[int],
    timeout: float | None,
    ask_kernel: Any,
) -> Any:
    """Wait on the hub until ``ask_kernel()`` answers something true, or ``timeout``.

    ``interest``: fd -> READ|WRITE; ``exceptional``: descriptors to watch for an
    exceptional condition.  Returns the last answer (false on timeout).
    """
    deadline = None if timeout is None else monotonic() + timeout
    with _ExceptionalWatch(exceptional) as watch:
        interest = dict(interest)
        for fd in [watch.fd] if watch.fd >= 0 else exceptional:
            interest[fd] = interest.get(fd, 0) | READ
        while True:
            remaining = None if deadline is None else max(deadline - monotonic(), 0.0)
            woken = wait_any(interest, remaining)
            watch.drain()
            answer = ask_kernel()
            if answer or not woken:
                return answer


def _block_forever_or_sleep(seconds: float | None) -> None:
    # Nothing to watch: the stdlib would just sleep (forever without a timeout).
    get_hub().sleep(seconds if seconds is not None else _FOREVER)


def select(
    rlist: Iterable[Any], wlist: Iterable[Any], xlist: Iterable[Any], timeout: float | None = None
) -> tuple[list[Any], list[Any], list[Any]]:
    """``select.select`` that waits on the hub."""
    timeout = _seconds(timeout)
    # As the C code: each sequence read once, fileno() called once per object.
    readers, writers = _with_filenos(rlist), _with_filenos(wlist)
    exceptional = _with_filenos(xlist)
    read_fds = [fd for _obj, fd in readers]
    write_fds = [fd for _obj, fd in writers]
    except_fds = [fd for _obj, fd in exceptional]

    def ask_kernel() -> tuple[list[Any], list[Any], list[Any]] | None:
        r, w, x = _original_select(read_fds, write_fds, except_fds, 0)
        if not (r or w or x):
            return None
        r_set, w_set, x_set = set(r), set(w), set(x)
        return (
            [obj for obj, fd in readers if fd in r_set],
            [obj for obj, fd in writers if fd in w_set],
            [obj for obj, fd in exceptional if fd in x_set],
        )

    ready = ask_kernel()
    if (ready is not None or timeout == 0) and _yielded_now_and_then():
        ready = ask_kernel()
    if ready is not None:
        return ready
    if timeout == 0:
        return [], [], []
    if not (readers or writers or exceptional):
        _block_forever_or_sleep(timeout)
        return [], [], []
    interest: dict[int, int] = {}
    for fd in read_fds:
        interest[fd] = interest.get(fd, 0) | READ
    for fd in write_fds:
        interest[fd] = interest.get(fd, 0) | WRITE
    try:
        ready = _wait_until(interest, except_fds, timeout, ask_kernel)
    except OSError as exc:
        if exc.errno != errno.EBADF:
            raise
        # A descriptor closed while we waited: the kernel's own answer (EBADF).
        _original_select(read_fds, write_fds, except_fds, 0)
        raise
    return ready if ready is not None else ([], [], [])


def _seconds(timeout: Any) -> float | None:
    """select()'s timeout checks: a float, an integer or None (TypeError otherwise)."""
    if timeout is None:
        return None
    if not isinstance(timeout, float):
        try:
            timeout = operator.index(timeout)
        except TypeError:
            raise TypeError("timeout must be a float or None") from None
    if timeout < 0:
        raise ValueError("timeout must be non-negative")
    return float(timeout)


def _with_filenos(objects: Iterable[Any]) -> list[tuple[Any, int]]:
    """(object, fd) pairs; a list's length is re-read, as fileno() may shrink it."""
    seq = objects if isinstance(objects, (list, tuple)) else list(objects)
    pairs = []
    index = 0
    while index < len(seq):
        obj = seq[index]
        pairs.append((obj, _fileno(obj)))
        index += 1
    return pairs


class poll:
    """``select.poll`` whose ``poll()`` waits on the hub.

    Registrations are mirrored in an original ``poll`` object, which answers
    every "what is ready now" question exactly (``POLLHUP``, ``POLLNVAL``...).
    """

    def __init__(self) -> None:
        if _original_poll is None:
            raise OSError("select.poll is not available on this platform")
        self._registered: dict[int, int] = {}
        self._kernel = _original_poll()

    def register(self, fd: Any, eventmask: int = POLLIN | POLLPRI | POLLOUT) -> None:
        fileno = _fileno(fd)
        self._kernel.register(fileno, eventmask)
        self._registered[fileno] = eventmask

    def modify(self, fd: Any, eventmask: int) -> None:
        fileno = _fileno(fd)
        self._kernel.modify(fileno, eventmask)
        self._registered[fileno] = eventmask

    def unregister(self, fd: Any) -> None:
        fileno = _fileno(fd)
        self._kernel.unregister(fileno)
        del self._registered[fileno]

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        """Ready ``(fd, events)`` pairs; ``timeout`` in milliseconds (None or < 0: forever)."""
        if timeout is not None and not isinstance(timeout, (int, float)):
            timeout = operator.index(timeout)  # TypeError for what the C code refuses
        seconds = None if timeout is None or timeout < 0 else timeout / 1000.0
        ready: list[tuple[int, int]] = self._kernel.poll(0)
        if (ready or seconds == 0) and _yielded_now_and_then():
            ready = self._kernel.poll(0)
        if ready or seconds == 0:
            return ready
        if not self._registered:
            _block_forever_or_sleep(seconds)
            return []
        interest: dict[int, int] = {}
        exceptional = []
        for fd, mask in self._registered.items():
            events = (READ if mask & _READ_MASK else 0) | (WRITE if mask & _WRITE_MASK else 0)
            if mask & POLLPRI:
                exceptional.append(fd)
            if events:
                interest[fd] = events
            elif not mask & POLLPRI:
                # POLLERR/POLLHUP are always reported by poll(); a hang-up makes
                # the descriptor readable, so watching for reading wakes us.
                interest[fd] = READ
        try:
            answer: list[tuple[int, int]] = _wait_until(
                interest, exceptional, seconds, lambda: self._kernel.poll(0)
            )
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            # A closed descriptor: poll() reports it (POLLNVAL) rather than failing.
            return self._kernel.poll(0)  # type: ignore[no-any-return]
        return answer


if _original_epoll is not None:

    class epoll:
        """``select.epoll`` whose ``poll()`` waits on the hub (see the module docstring).

        A wrapper, not a subclass (the C type refuses subclasses): every other
        method is the real object's.
        """

        __slots__ = ("_epoll",)

        def __init__(self, sizehint: int = -1, flags: int = 0) -> None:
            self._epoll = _original_epoll(sizehint, flags)

        @classmethod
        def fromfd(cls, fd: int) -> epoll:
            """An epoll object for an existing epoll descriptor (which it then owns)."""
            self = cls.__new__(cls)
            self._epoll = _original_epoll.fromfd(fd)
            return self

        @property
        def closed(self) -> bool:
            return bool(self._epoll.closed)

        def close(self) -> None:
            self._epoll.close()

        def fileno(self) -> int:
            return int(self._epoll.fileno())

        def register(self, fd: Any, eventmask: int = _EPOLL_DEFAULT_MASK) -> None:
            self._epoll.register(fd, eventmask)

        def modify(self, fd: Any, eventmask: int) -> None:
            self._epoll.modify(fd, eventmask)

        def unregister(self, fd: Any) -> None:
            self._epoll.unregister(fd)

        def poll(self, timeout: float | None = None, maxevents: int = -1) -> list[tuple[int, int]]:
            """Ready ``(fd, events)`` pairs; ``timeout`` in seconds (None or < 0: forever)."""
            real = self._epoll
            # Asked first: the kernel's own checks (closed object, bad maxevents).
            events: list[tuple[int, int]] = real.poll(0, maxevents)
            if timeout is not None and not isinstance(timeout, (int, float)):
                raise TypeError("timeout must be an integer or None")
            if events or timeout == 0:
                # Delivered even when it yields: the kernel reports an
                # edge-triggered or one-shot event once, so asking again
                # could lose it.
                _yielded_now_and_then()
                return events
            deadline = None if timeout is None or timeout < 0 else monotonic() + timeout
            fd = real.fileno()
            while True:
                remaining = None if deadline is None else max(deadline - monotonic(), 0.0)
                woken = wait_any({fd: READ}, remaining)
                events = real.poll(0, maxevents)
                if events or not woken:
                    return events

        def __enter__(self) -> epoll:
            self._epoll.__enter__()
            return self

        def __exit__(self, *exc_info: object) -> None:
            self._epoll.__exit__(*exc_info)

        def __repr__(self) -> str:
            state = "closed" if self.closed else f"fd={self.fileno()}"
            return f"<select.epoll {state}>"
