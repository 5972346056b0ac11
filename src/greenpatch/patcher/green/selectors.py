"""Green ``selectors``: ``DefaultSelector`` waits on the hub.

``selectors.DefaultSelector`` is the selector that asyncio, ``socket.sendfile``,
``subprocess.communicate`` and many libraries pick; after patching it is
``HubSelector``, which registers file objects as usual and, in ``select()``,
waits on the hub through the same helper as the green ``select`` module.
"""

from __future__ import annotations

import selectors as _stdlib
from typing import Any

from greenpatch.hub.watchers import READ, WRITE
from greenpatch.patcher.green.select import _original_select, _wait_for_events
from greenpatch.patcher.green.select import poll as _green_poll
from greenpatch.patcher.green.select import select as _green_select

__target__ = "selectors"
__implements__ = ["DefaultSelector", "PollSelector", "SelectSelector"]

EVENT_READ = _stdlib.EVENT_READ
EVENT_WRITE = _stdlib.EVENT_WRITE


class HubSelector(_stdlib._BaseSelectorImpl):
    """A selector whose ``select()`` suspends the greenlet, not the thread."""

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        keys: dict[int, Any] = self._fd_to_key  # type: ignore[attr-defined]
        if not keys:
            if timeout is None or timeout > 0:
                from greenpatch.hub import get_hub

                get_hub().sleep(timeout if timeout is not None else 365 * 24 * 3600.0)
            return []
        if timeout is not None and timeout <= 0:
            return self._select_now(keys)
        interest = {
            fd: (READ if key.events & EVENT_READ else 0)
            | (WRITE if key.events & EVENT_WRITE else 0)
            for fd, key in keys.items()
        }
        ready = _wait_for_events(interest, timeout)
        result = []
        for fd, events in ready.items():
            key = keys.get(fd)
            if key is None:
                continue  # unregistered by another greenlet meanwhile
            mask = (EVENT_READ if events & READ else 0) | (EVENT_WRITE if events & WRITE else 0)
            mask &= key.events
            if mask:
                result.append((key, mask))
        return result

    def _select_now(self, keys: dict[int, Any]) -> list[tuple[Any, int]]:
        readers = [fd for fd, key in keys.items() if key.events & EVENT_READ]
        writers = [fd for fd, key in keys.items() if key.events & EVENT_WRITE]
        readable, writable, _ = _original_select(readers, writers, [], 0)
        ready: dict[int, int] = {}
        for fd in readable:
            ready[fd] = ready.get(fd, 0) | EVENT_READ
        for fd in writable:
            ready[fd] = ready.get(fd, 0) | EVENT_WRITE
        return [(keys[fd], mask) for fd, mask in ready.items()]


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
        r, w, x = _green_select(r, w, w, timeout)
        return r, w + x, []
