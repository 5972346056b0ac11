"""``Timeout``: raise an exception in the current greenlet after some seconds.

    with Timeout(2):            # raises Timeout in this greenlet after 2 s
        long_call()

    with Timeout(2, False):     # ... or just leaves the block silently
        long_call()

The timer lives in the loop's timer heap; ``cancel()`` (or leaving the ``with``
block) removes it, so a finished wait never leaves a live timer behind.  The
exception is delivered through ``Greenlet.throw`` for tasks, which refuses to hit a
task that has finished, so a Timeout that was never cancelled cannot interrupt
unrelated work that a reused worker runs later.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from greenpatch.hub.hub import get_hub, getcurrent_task
from greenpatch.hub.loop import TimerHandle

__all__ = ["Timeout", "with_timeout"]

T = TypeVar("T")
_UNSET: Any = object()


class Timeout(BaseException):
    """An exception raised in a greenlet when its time is up.

    ``exception=None`` raises the Timeout itself; ``exception=False`` raises it too
    but the ``with`` block swallows it; an exception class or instance raises that
    instead.  ``seconds=None`` never fires.  A ``BaseException`` so that a bare
    ``except Exception`` in user code does not swallow it by accident.
    """

    def __init__(self, seconds: float | None = None, exception: Any = None) -> None:
        super().__init__(seconds)
        self.seconds = seconds
        self.exception = exception
        self._timer: TimerHandle | None = None

    @classmethod
    def start_new(cls, seconds: float | None = None, exception: Any = None) -> Timeout:
        if isinstance(seconds, Timeout):
            if not seconds.pending:
                seconds.start()
            return seconds
        timeout = cls(seconds, exception)
        timeout.start()
        return timeout

    def start(self) -> None:
        """Arm the timer for the current greenlet."""
        if self.pending:
            raise RuntimeError(f"{self!r} is already started; cancel() it first")
        if self.seconds is None:
            return
        target = getcurrent_task()
        self._timer = get_hub().loop.call_later(self.seconds, self._expire, target)

    def _expire(self, target: Any) -> None:
        self._timer = None
        exception = self.exception
        if exception is None or exception is False:
            exc: BaseException = self
        elif isinstance(exception, type):
            exc = exception()
        else:
            exc = exception
        if not getattr(target, "dead", False):
            target.throw(exc)

    @property
    def pending(self) -> bool:
        """True while armed and not yet fired or cancelled."""
        return self._timer is not None and self._timer.pending

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    close = cancel

    def __enter__(self) -> Timeout:
        if not self.pending:
            self.start()
        return self

    def __exit__(self, exc_type: Any, value: Any, tb: Any) -> bool:
        self.cancel()
        return value is self and self.exception is False

    def __str__(self) -> str:
        if self.seconds is None:
            return ""
        suffix = "" if self.seconds == 1 else "s"
        if self.exception is None or self.exception is False:
            return f"{self.seconds} second{suffix}"
        return f"{self.seconds} second{suffix}: {self.exception}"

    def __repr__(self) -> str:
        state = "pending" if self.pending else "idle"
        return f"<Timeout seconds={self.seconds} exception={self.exception!r} {state}>"


def with_timeout(
    seconds: float | None,
    function: Callable[..., T],
    *args: Any,
    timeout_value: Any = _UNSET,
    **kwargs: Any,
) -> Any:
    """Call ``function(*args, **kwargs)``; after ``seconds``, raise Timeout, or return
    ``timeout_value`` when one is given."""
    timeout = Timeout.start_new(seconds)
    try:
        return function(*args, **kwargs)
    except Timeout as exc:
        if exc is timeout and timeout_value is not _UNSET:
            return timeout_value
        raise
    finally:
        timeout.cancel()
