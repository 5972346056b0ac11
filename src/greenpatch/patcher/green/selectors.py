"""Green ``selectors``: ``DefaultSelector`` waits on the hub.

``selectors.DefaultSelector`` is the selector that asyncio, ``socket.sendfile``,
``subprocess.communicate`` and many libraries pick; after patching it is
``HubSelector``: a ``PollSelector`` over the *original* ``select.poll`` (which
answers "what is ready now" exactly, for any descriptor number), whose
``select()`` asks that poll object without waiting first and, when nothing is
ready, waits in the hub's wait queues of the registered descriptors, then asks
again -- the same scheme as the green ``select`` module.

A descriptor closed while registered
------------------------------------
poll reports it (``POLLNVAL``, which a ``PollSelector`` turns into "ready");
epoll and kqueue, the stdlib's default selectors on Linux and BSD/macOS, forget
it: the select goes on waiting for the others or the timeout.  Programs that
close a socket under their own select loop rely on that (websocket-client's
``run_forever`` then meets its ping timeout, and reconnects).  So where the
stdlib's default is not poll or select, the green default (``HubDefaultSelector``)
forgets a registered descriptor that is closed when ``select()`` begins.
One closed *during* the wait, by another green thread, still ends the wait as
ready (the hub wakes its waiters with EBADF, see ``hub/io.py``): with OS threads
the waiter would have been woken by what made the other thread close it (the
peer's close frame, a shutdown), which a green waiter may not have had its turn
to see.
"""

from __future__ import annotations

import errno
import select as _select
import selectors as _stdlib
from typing import Any

from greenpatch.hub.io import READ, WRITE
from greenpatch.patcher.green.select import _block_forever_or_sleep, _original_poll, _wait_until
from greenpatch.patcher.green.select import poll as _green_poll
from greenpatch.patcher.green.select import select as _green_select

__target__ = "selectors"
__implements__ = ["DefaultSelector", "PollSelector", "SelectSelector"]

EVENT_READ = _stdlib.EVENT_READ
EVENT_WRITE = _stdlib.EVENT_WRITE
_POLLNVAL = getattr(_select, "POLLNVAL", 32)
_POLLIN = getattr(_select, "POLLIN", 1)
_POLLOUT = getattr(_select, "POLLOUT", 4)


class HubSelector(_stdlib.PollSelector):
    """A selector whose ``select()`` suspends the greenlet, not the thread."""

    # Bound here, not inherited: the stdlib class took whatever select.poll was
    # when selectors was imported, which may be the green one.
    _selector_cls = _original_poll
    #: Leave out the registered descriptors found closed (see the module docstring).
    _forget_closed = False

    def _ready_now(self) -> tuple[list[tuple[Any, int]], set[int]]:
        """What is ready without waiting, and the closed descriptors left out of it."""
        if not self._forget_closed:
            return super().select(0), set()
        # One poll(0), read as PollSelector.select reads it, less the closed
        # descriptors (rejected: PollSelector.select then a second poll to find
        # them -- two system calls for every ready answer, asyncio's hot path).
        poller: Any = self._selector  # type: ignore[attr-defined]
        keys: dict[int, Any] = self._fd_to_key  # type: ignore[attr-defined]
        ready: list[tuple[Any, int]] = []
        closed: set[int] = set()
        for fd, event in poller.poll(0):
            if event & _POLLNVAL:
                closed.add(fd)
                continue
            events = (EVENT_WRITE if event & ~_POLLIN else 0) | (
                EVENT_READ if event & ~_POLLOUT else 0
            )
            key = keys.get(fd)
            if key is not None:
                ready.append((key, events & key.events))
        return ready, closed

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready, closed = self._ready_now()
        if ready or (timeout is not None and timeout <= 0):
            return ready
        keys: dict[int, Any] = self._fd_to_key  # type: ignore[attr-defined]
        interest = {
            fd: (READ if key.events & EVENT_READ else 0)
            | (WRITE if key.events & EVENT_WRITE else 0)
            for fd, key in keys.items()
            if fd not in closed
        }
        if not interest:
            _block_forever_or_sleep(timeout)
            return []
        try:
            answer: list[tuple[Any, int]] = _wait_until(
                interest, (), timeout, lambda: self._ready_now()[0]
            )
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            # Closed under the wait: reported ready (POLLNVAL), as poll reports it.
            return super().select(0)
        return answer


class HubDefaultSelector(HubSelector):
    """``HubSelector`` with epoll's and kqueue's answer for a closed descriptor."""

    _forget_closed = True


# The stdlib's own choice, made when selectors was imported.
_stdlib_default: Any = _stdlib.DefaultSelector
if _stdlib_default in (_stdlib.PollSelector, _stdlib.SelectSelector):
    DefaultSelector: type[HubSelector] = HubSelector
else:
    DefaultSelector = HubDefaultSelector


# The stdlib's PollSelector and SelectSelector bind select.poll / select.select
# when selectors is imported -- before patching, since socket imports selectors.
# Explicit users (socket._sendfile_use_sendfile, subprocess, multiprocessing)
# would block the thread; these wait on the hub.
class PollSelector(_stdlib.PollSelector):
    """``selectors.PollSelector`` over the green ``select.poll``."""

    _selector_cls = _green_poll


class SelectSelector(_stdlib.SelectSelector):
    """``selectors.SelectSelector`` over the green ``select.select``."""

    def _select(self, r: Any, w: Any, _: Any, timeout: float | None = None) -> Any:
        return _green_select(r, w, [], timeout)
