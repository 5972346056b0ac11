"""Waiting for many: ``joinall``, ``killall``, ``iwait`` and ``wait``.

They work on anything with ``rawlink``/``unlink`` and ``ready()`` (tasks,
events, async results), through one ``Waiter`` per call: a group of N objects
costs one wake-up per object that finishes, not N timers or N greenlets.
(Split from ``greenlet.py``, which keeps what a single task is.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from greenlet import GreenletExit

from greenpatch.hub.greenlet import Greenlet
from greenpatch.hub.hub import Hub, Waiter, get_hub

__all__ = ["iwait", "joinall", "killall", "wait"]


def joinall(
    greenlets: Iterable[Greenlet],
    timeout: float | None = None,
    raise_error: bool = False,
    count: int | None = None,
) -> list[Greenlet]:
    """Wait for the greenlets to finish; return those that did (in finishing order).

    With ``raise_error``, re-raise the first exception a greenlet finished with.
    """
    greenlets = list(greenlets)
    if count is None and timeout is None and not raise_error:
        # Fast path: wait for each in turn; while we wait on one, the rest run.
        for glet in greenlets:
            if not glet.ready():
                glet.join()
        return greenlets
    done = []
    for glet in iwait(greenlets, timeout=timeout, count=count):
        done.append(glet)
        if raise_error and not glet.successful():
            glet.get()
    return done


def killall(
    greenlets: Iterable[Greenlet],
    exception: Any = GreenletExit,
    block: bool = True,
    timeout: float | None = None,
) -> None:
    """Kill the greenlets; with ``block``, wait until all have finished."""
    greenlets = list(greenlets)
    for glet in greenlets:
        glet.kill(exception, block=False)
    if block:
        joinall(greenlets, timeout=timeout)


class _WaitIterator:
    """Yields objects as they become ready; they must have rawlink/unlink/ready."""

    def __init__(self, objects: Sequence[Any], hub: Hub, timeout: float | None, count: int | None):
        self._objects = objects
        self._hub = hub
        self._ready: deque[Any] = deque()
        self._waiter: Waiter | None = None
        self._remaining = len(objects) if count is None else min(count, len(objects))
        self._timer: Any = None
        self._timed_out = False
        for obj in objects:
            obj.rawlink(self._on_ready)
        if timeout is not None:
            self._timer = hub.loop.call_later(timeout, self._on_timeout)

    def _on_ready(self, obj: Any) -> None:
        self._ready.append(obj)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.switch(None)

    def _on_timeout(self) -> None:
        self._timed_out = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.switch(None)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            while self._remaining > 0:
                if self._ready:
                    self._remaining -= 1
                    return self._ready.popleft()
                if self._timed_out:
                    break
                self._waiter = Waiter(self._hub)
                self._waiter.get()
        except BaseException:
            self.close()
            raise
        self.close()
        raise StopIteration

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for obj in self._objects:
            obj.unlink(self._on_ready)
        self._objects = ()


def iwait(
    objects: Iterable[Any], timeout: float | None = None, count: int | None = None
) -> Iterator[Any]:
    """Iterate over ``objects`` (greenlets, events, ...) in the order they become ready."""
    return _WaitIterator(list(objects), get_hub(), timeout, count)


def wait(
    objects: Iterable[Any] | None = None, timeout: float | None = None, count: int | None = None
) -> Any:
    """Wait for ``objects`` to become ready and return those that did.

    With no objects, run the loop until nothing is left to do: returns True then,
    False on timeout.
    """
    if objects is None:
        return get_hub().join(timeout)
    return list(iwait(objects, timeout, count))
