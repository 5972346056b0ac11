"""``ThreadPoolExecutor``: a ``concurrent.futures.Executor`` on greenpatch's worker threads.

Kept apart from ``threadpool.py`` so that using the thread pool (the resolver
does, and so ``patch_all()`` does) does not import ``concurrent.futures`` and
``logging``.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
from typing import Any, Callable, TypeVar

from greenlet import getcurrent

from greenpatch.hub.event import Event
from greenpatch.hub.hub import get_hub_if_exists
from greenpatch.hub.threadpool import DEFAULT_IDLE_TIMEOUT, _Task, _WorkerThreads

T = TypeVar("T")

__all__ = ["ThreadPoolExecutor"]


class _CooperativeFuture(concurrent.futures.Future[Any]):
    """A ``Future`` whose ``result()``/``exception()`` wait cooperatively in a greenlet.

    In a thread without a hub, or in the hub greenlet itself, they block the
    thread as usual.  The future is completed by the worker thread (as the
    stdlib executor does), so ``concurrent.futures.wait``, ``as_completed`` and
    done-callbacks behave as usual; a done-callback of ours sets an ``Event``
    that greenlets (of any thread's hub) wait on.
    """

    def __init__(self) -> None:
        super().__init__()
        self._done_event = Event()
        self.add_done_callback(_set_done_event)

    def _wait_cooperatively(self, timeout: float | None) -> bool:
        """Wait in a greenlet if that is possible; return whether we did."""
        if self.done():
            return False
        hub = get_hub_if_exists()
        if hub is None or getcurrent() is hub:
            return False
        self._done_event.wait(timeout)
        return True

    def result(self, timeout: float | None = None) -> Any:
        if self._wait_cooperatively(timeout):
            timeout = 0  # done, or timed out: do not block the thread again
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._wait_cooperatively(timeout):
            timeout = 0
        return super().exception(timeout)


def _set_done_event(future: concurrent.futures.Future[Any]) -> None:
    assert isinstance(future, _CooperativeFuture)
    future._done_event.set()


class _FutureTask(_Task):
    """A ``ThreadPoolExecutor.submit`` call: the worker completes the future itself."""

    __slots__ = ("future",)

    def __init__(self, future: _CooperativeFuture, call: Callable[[], Any]) -> None:
        super().__init__(call)
        self.future = future

    def execute(self) -> None:
        call, self.call = self.call, None
        assert call is not None
        future = self.future
        if future.set_running_or_notify_cancel():
            try:
                value = call()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(value)

    def abandon(self, error: BaseException) -> None:
        future = self.future
        if isinstance(error, concurrent.futures.CancelledError) and future.cancel():
            return
        if not future.done():
            future.set_exception(error)


class ThreadPoolExecutor(concurrent.futures.Executor):
    """A ``concurrent.futures.Executor`` on greenpatch's worker threads.

    ``submit`` may be called from any thread.  Its futures are ordinary
    ``concurrent.futures.Future`` objects, except that ``result()`` and
    ``exception()`` called in a greenlet let the other greenlets run meanwhile.
    """

    def __init__(
        self, max_workers: int | None = None, idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    ) -> None:
        if max_workers is None:
            max_workers = min(32, (os.cpu_count() or 1) + 4)  # the stdlib's default
        if max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        self._threads = _WorkerThreads(max_workers, idle_timeout)

    @property
    def max_workers(self) -> int:
        return self._threads.maxsize

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future = _CooperativeFuture()
        try:
            self._threads._enqueue(_FutureTask(future, functools.partial(fn, *args, **kwargs)))
        except RuntimeError:
            if self._threads.closed:
                raise RuntimeError("cannot schedule new futures after shutdown") from None
            raise
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._threads.shutdown(wait, cancel_pending=cancel_futures)
