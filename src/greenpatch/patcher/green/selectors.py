"""Green ``selectors``: ``DefaultSelector`` waits on the hub.

``selectors.DefaultSelector`` is the selector that asyncio, ``socket.sendfile``,
``subprocess.communicate`` and many libraries pick.  ``HubSelector`` is a
``PollSelector`` over the *original* ``select.poll`` (which
answers "what is ready now" exactly, for any descriptor number), whose
``select()`` asks that poll object without waiting first and, when nothing is
ready, waits in the hub's wait queues of the registered descriptors, then asks
again -- the same scheme as the green ``select`` module.  It is the green
default where the stdlib's is not epoll, and the green ``subprocess``'s selector.

Where the stdlib's default is an ``EpollSelector`` (Linux), the green default is
one too, over the green ``epoll`` (``HubEpollSelector``), because poll and epoll differ
on a descriptor closed while registered.  poll reports it (``POLLNVAL``, which a
``PollSelector`` turns into "ready"); epoll forgets it, and the selector goes on
waiting for the others or the timeout.  Programs that close a socket under their
own select loop rely on the latter (websocket-client's ``run_forever`` meets
its ping timeout instead of a read on the closed socket).
"""

from __future__ import annotations

import errno
import selectors as _stdlib
from typing import Any

from greenpatch.hub.io import READ, WRITE
from greenpatch.patcher.green import select as _green_select_module
from greenpatch.patcher.green.select import _block_forever_or_sleep, _original_poll, _wait_until
from greenpatch.patcher.green.select import poll as _green_poll
from greenpatch.patcher.green.select import select as _green_select

_green_epoll: Any = getattr(_green_select_module, "epoll", None)

__target__ = "selectors"
__implements__ = ["DefaultSelector", "PollSelector", "SelectSelector"]

EVENT_READ = _stdlib.EVENT_READ
EVENT_WRITE = _stdlib.EVENT_WRITE


class HubSelector(_stdlib.PollSelector):
    """A selector whose ``select()`` suspends the greenlet, not the thread."""

    # Bound here, not inherited: the stdlib class took whatever select.poll was
    # when selectors was imported, which may be the green one.
    _selector_cls = _original_poll

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready = super().select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        keys: dict[int, Any] = self._fd_to_key  # type: ignore[attr-defined]
        if not keys:
            _block_forever_or_sleep(timeout)
            return []
        interest = {
            fd: (READ if key.events & EVENT_READ else 0)
            | (WRITE if key.events & EVENT_WRITE else 0)
            for fd, key in keys.items()
        }
        try:
            answer: list[tuple[Any, int]] = _wait_until(
                interest, (), timeout, lambda: super(HubSelector, self).select(0)
            )
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            # A closed descriptor: poll reports it (POLLNVAL), as the stdlib's selector does.
            return super().select(0)
        return answer


if hasattr(_stdlib, "EpollSelector") and _green_epoll is not None:

    class HubEpollSelector(_stdlib.EpollSelector):
        """``selectors.EpollSelector`` over the green ``epoll``: its ``select()``
        waits on the hub for the epoll object's own descriptor."""

        _selector_cls = _green_epoll

    DefaultSelector: type[_stdlib.BaseSelector] = HubEpollSelector
else:
    DefaultSelector = HubSelector


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
