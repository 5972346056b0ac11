"""Green ``select``: ``select.select`` and ``select.poll`` wait on the hub.

Both are built on one helper, ``_wait_for_events``: it starts an io watcher per
descriptor, each recording what became ready; the first one to fire schedules a
single resume of the waiting greenlet as a loop callback.  Callbacks run after the
whole batch of ready watchers was dispatched, so one wake-up reports every
descriptor that was ready in that loop iteration, as a real ``select`` would.

A zero timeout never touches the hub: it asks the kernel directly (the original
``select``/``poll``), which is both exact and cheaper.
"""

from __future__ import annotations

import operator
import select as _stdlib
from collections.abc import Iterable
from typing import Any

from greenlet import getcurrent

from greenpatch.hub import get_hub
from greenpatch.hub.watchers import READ, WRITE

__target__ = "select"
__implements__ = ["select", "poll"]

_original_select = _stdlib.select
_original_poll = getattr(_stdlib, "poll", None)
error = _stdlib.error

POLLIN = getattr(_stdlib, "POLLIN", 1)
POLLPRI = getattr(_stdlib, "POLLPRI", 2)
POLLOUT = getattr(_stdlib, "POLLOUT", 4)
POLLERR = getattr(_stdlib, "POLLERR", 8)
POLLHUP = getattr(_stdlib, "POLLHUP", 16)
POLLNVAL = getattr(_stdlib, "POLLNVAL", 32)
_READ_MASK = POLLIN | POLLPRI
_FOREVER = 365 * 24 * 3600.0
_WRITE_MASK = POLLOUT


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


def _wait_for_events(interest: dict[int, int], timeout: float | None) -> dict[int, int]:
    """Block until some of ``interest`` (fd -> READ|WRITE) is ready; fd -> ready events."""
    hub = get_hub()
    current = getcurrent()
    ready: dict[int, int] = {}
    scheduled: list[list[Any]] = []  # the one resume token, once scheduled

    def wake() -> None:
        if not scheduled:
            scheduled.append(hub.resume_soon(current))

    def on_event(fd: int, events: int) -> None:
        ready[fd] = ready.get(fd, 0) | events
        wake()

    watchers = []
    timer = None
    try:
        for fd, events in interest.items():
            for flag in (READ, WRITE):
                if events & flag:
                    watcher = hub.loop.io(fd, flag)
                    watcher.start(on_event, fd, flag)
                    # Tracked, so that closing the socket in another greenlet
                    # wakes us with EBADF instead of leaving libev polling a
                    # closed descriptor.
                    watcher.waiter = current
                    hub.track_fd(fd, watcher)
                    watchers.append((fd, watcher))
        if timeout is not None:
            timer = hub.loop.call_later(max(timeout, 0.0), wake)
        hub.switch()
    finally:
        for fd, watcher in watchers:
            hub.untrack_fd(fd, watcher)
            watcher.waiter = None  # no cancellation may reach us after this wait
            watcher.close()
        if timer is not None:
            timer.cancel()
        if scheduled:
            scheduled[0].clear()  # harmless after the resume; vital after an exception
    return ready


def _block_forever_or_sleep(seconds: float | None) -> None:
    # Nothing to watch: the stdlib would just sleep (forever without a timeout).
    get_hub().sleep(seconds if seconds is not None else _FOREVER)


def select(
    rlist: Iterable[Any], wlist: Iterable[Any], xlist: Iterable[Any], timeout: float | None = None
) -> tuple[list[Any], list[Any], list[Any]]:
    """``select.select`` that waits on the hub (exceptional conditions are not watched)."""
    timeout = _seconds(timeout)
    if timeout == 0:
        return _original_select(rlist, wlist, xlist, 0)
    # As the C code: each sequence read once, fileno() called once per object.
    readers, writers = _with_filenos(rlist), _with_filenos(wlist)
    _with_filenos(xlist)  # validated; exceptional conditions are not watched
    interest: dict[int, int] = {}
    for _obj, fd in readers:
        interest[fd] = interest.get(fd, 0) | READ
    for _obj, fd in writers:
        interest[fd] = interest.get(fd, 0) | WRITE
    if not interest:
        _block_forever_or_sleep(timeout)
        return [], [], []
    ready = _wait_for_events(interest, timeout)
    if not ready:
        return [], [], []
    return (
        [obj for obj, fd in readers if ready.get(fd, 0) & READ],
        [obj for obj, fd in writers if ready.get(fd, 0) & WRITE],
        [],
    )


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
    """``select.poll`` whose ``poll()`` waits on the hub."""

    def __init__(self) -> None:
        self._registered: dict[int, int] = {}

    def register(self, fd: Any, eventmask: int = POLLIN | POLLPRI | POLLOUT) -> None:
        self._registered[_fileno(fd)] = eventmask

    def modify(self, fd: Any, eventmask: int) -> None:
        fileno = _fileno(fd)
        if fileno not in self._registered:
            raise FileNotFoundError(2, "No such file or directory")
        self._registered[fileno] = eventmask

    def unregister(self, fd: Any) -> None:
        fileno = _fileno(fd)
        if fileno not in self._registered:
            raise KeyError(fileno)
        del self._registered[fileno]

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        """Ready ``(fd, events)`` pairs; ``timeout`` in milliseconds (None or < 0: forever)."""
        seconds = None if timeout is None or float(timeout) < 0 else float(timeout) / 1000.0
        if seconds == 0:
            return self._poll_now()
        if not self._registered:
            _block_forever_or_sleep(seconds)
            return []
        interest: dict[int, int] = {}
        for fd, mask in self._registered.items():
            events = (READ if mask & _READ_MASK else 0) | (WRITE if mask & _WRITE_MASK else 0)
            # POLLERR/POLLHUP are always reported by poll(); watch for reading so a
            # hang-up (which makes the descriptor readable) wakes us.
            interest[fd] = events or READ
        ready = _wait_for_events(interest, seconds)
        if not ready:
            return []
        # Ask the kernel for the exact flags (POLLHUP, POLLERR, POLLNVAL) of what woke us.
        return self._poll_now()

    def _poll_now(self) -> list[tuple[int, int]]:
        if _original_poll is None:
            raise OSError("select.poll is not available on this platform")
        real = _original_poll()
        for fd, mask in self._registered.items():
            real.register(fd, mask)
        return real.poll(0)  # type: ignore[no-any-return]
