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

__all__ = ["Timeout", "wait_until_timeout", "with_timeout"]

T = TypeVar("T")
_UNSET: Any = object()


class Timeout(BaseException):
    """An exception raised in a greenlet when its time is up.

    ``exception=None`` raises the Timeout itself; ``exception=False`` raises it too
    but the ``with`` block swallows it; an exception class or instance raises that
    instead.  ``seconds=None`` never fires.  A ``BaseException`` so that a bare
    ``except Exception`` in user code does not swallow it by accident.
    """

    def __init__(
        self, seconds: float | None = None, exception: Any = None, ref: bool = True
    ) -> None:
        super().__init__(seconds)
        self.seconds = seconds
        self.exception = exception
        #: False: the armed timer alone does not keep the loop running (gevent's
        #: ``ref=False``), so a program whose other work is done can end first.
        self.ref = ref
        self._timer: TimerHandle | None = None

    @classmethod
    def start_new(
        cls, timeout: Any = None, exception: Any = None, ref: bool = True, **kwargs: Any
    ) -> Timeout:
        """A started Timeout; a ``Timeout`` passed in is started (if idle) and returned.

        The first parameter is named ``timeout`` as in gevent; ``seconds=`` is
        accepted too, the name used by ``Timeout()`` itself.
        """
        if "seconds" in kwargs:
            if timeout is not None:
                raise TypeError("Timeout.start_new() got both timeout and seconds")
            timeout = kwargs.pop("seconds")
        if kwargs:
            raise TypeError(f"Timeout.start_new() got unexpected arguments {sorted(kwargs)}")
        if isinstance(timeout, Timeout):
            if not timeout.pending:
                timeout.start()
            return timeout
        new = cls(timeout, exception, ref=ref)
        new.start()
        return new

    def start(self) -> None:
        """Arm the timer for the current greenlet."""
        if self.pending:
            raise RuntimeError(f"{self!r} is already started; cancel() it first")
        if self.seconds is None:
            return
        target = getcurrent_task()
        self._timer = get_hub().loop.call_later(self.seconds, self._expire, target)
        if not self.ref:
            self._timer.ref = False

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


def wait_until_timeout(timeout: Timeout, wait: Callable[[], T]) -> tuple[bool, T | None]:
    """Run ``wait()`` with a caller's ``Timeout`` object as its deadline.

    gevent lets ``timeout=`` of ``join``/``get``/``wait`` be a ``Timeout``: it is
    started if idle, bounds the wait, and is cancelled when the wait ends.  Returns
    ``(True, result)``, or ``(False, None)`` when that very Timeout fired; any
    other exception, including a Timeout that carries its own exception,
    propagates.  Callers that must raise on expiry (``get``) catch nothing and let
    the Timeout out instead.
    """
    Timeout.start_new(timeout)
    try:
        return True, wait()
    except Timeout as exc:
        if exc is not timeout:
            raise
        return False, None
    finally:
        timeout.cancel()


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
