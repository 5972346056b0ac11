"""``signal_handler``: run a function in a new greenlet when a signal arrives.

    handle = signal_handler(signal.SIGUSR1, reload_config, path)
    ...
    handle.cancel()

The handler runs in a greenlet spawned on the hub, not in the hub itself, so it
may block (sleep, do I/O, wait on results).  Several handlers of one signal all
run, each in its own greenlet, in the order they were installed.

How this meets Python's own signal handling
-------------------------------------------
libev watches signals with its own C handler, installed with ``sigaction`` when
the first watcher of a signal starts; it records the signal and wakes the loop.
That replaces the C handler Python installed for ``signal.signal``, so while a
greenpatch handler is active:

* the Python-level handler of that signal does not run (``signal.getsignal``
  still reports it: Python's table is not told);
* calling ``signal.signal`` for that signal puts Python's C handler back and
  silently starves the greenpatch handlers: cancel them first;
* for SIGINT this means no ``KeyboardInterrupt``.

When the last watcher of a signal stops, libev resets the signal to
``SIG_DFL``, which for SIGUSR1 or SIGTERM would kill the process if one arrived
before a handler is back.  So the last ``cancel()`` of a signal first calls
``signal.signal(signum, handler)`` with the handler ``signal.getsignal``
reports (the one in effect before we installed, unless Python code replaced it
meanwhile), which reinstalls Python's C handler, then stops the watcher in C
and puts that handler straight back after libev's reset
(``SignalWatcher.keep_disposition``): the signal is at its default action for
one system call.  A signal sent to the process in that instant by another
thread can still end it: 2,000 cancels under a non-stop storm of SIGUSR1 from
another thread ended the process in 3 runs of 10 (every run, before this).
Closing the gap needs a stop libev does not offer.
A handler installed outside Python (``getsignal`` returns None) cannot be put
back; the signal is then left at ``SIG_DFL``.

Rejected: installing a Python-level handler with ``signal.signal`` that wakes
the hub.  Python runs it only between bytecodes of the main thread; a signal
delivered to another thread (a threadpool worker, say) does not interrupt the
main thread's epoll_wait, so the hub would sleep through it unless a wakeup fd
were added as well, and ``signal.set_wakeup_fd`` is a single process-wide slot
that asyncio and others also claim.

Only the default loop (the main thread's hub) may watch signals: libev ties
each signal to one loop, and Python allows ``signal.signal`` only in the main
thread.  SIGCHLD is refused: the default loop already owns it for child
watchers (see ``ChildWatcher``), and libev would never install a handler for a
second watcher of it.  The signal watcher does not keep the loop alive
(``ref=False``): an installed handler is no work to wait for.
"""

from __future__ import annotations

import signal as _signal
from signal import getsignal as _getsignal
from signal import signal as _set_signal
from typing import Any, Callable

from greenpatch.hub.greenlet import spawn
from greenpatch.hub.hub import Hub, get_hub
from greenpatch.hub.loop import signal_wakes_default_loop
from greenpatch.hub.watchers import SignalWatcher

__all__ = ["SignalHandler", "signal_handler"]

_UNCATCHABLE = {_signal.SIGKILL, _signal.SIGSTOP}


class _SignalDispatcher:
    """The one libev watcher of a signal, and the handlers it starts."""

    def __init__(self, hub: Hub, signum: int) -> None:
        self.hub = hub
        self.signum = signum
        self.handlers: list[SignalHandler] = []
        # Process-wide: a signal handler outlives its hub's use of the loop.
        self.watcher: SignalWatcher = hub.loop.signal(signum, process_wide=True)
        self.watcher.ref = False
        self.watcher.start(self._fire)

    def _fire(self) -> None:
        # Copied: a handler may cancel itself (or install others) while we spawn.
        for handler in list(self.handlers):
            spawn(handler._run)

    def remove(self, handler: SignalHandler) -> None:
        self.handlers.remove(handler)
        if self.handlers:
            return
        _dispatchers(self.hub).pop(self.signum, None)
        # libev's stop of the last watcher resets the signal to SIG_DFL, which
        # would kill the process (SIGUSR1, SIGTERM...) if one came before
        # Python's handler is back.  So Python's handler goes in first, and the
        # stop puts it back in C right after libev's reset: one system call of
        # exposure, for a signal delivered to another thread in that instant.
        # (Rejected: parking the watcher instead of stopping it, swapping
        # handlers with sigaction: then libev counts a watcher nobody uses, and
        # other watchers of the signal no longer get its handler installed.)
        # Blocked in this thread, a signal stays pending and reaches the
        # restored handler at the unblock.
        mask = _signal.pthread_sigmask(_signal.SIG_BLOCK, {self.signum})
        try:
            current = _getsignal(self.signum)
            if current is not None:
                _set_signal(self.signum, current)
                if callable(current):
                    # A Python handler is back: so is the C wake-up in front of
                    # CPython's handler (a hub blocked in the kernel must return
                    # to Python to run it); the stop keeps it in place.
                    signal_wakes_default_loop(self.signum)
                self.watcher.keep_disposition = True
            self.watcher.close()  # without a Python handler to keep: SIG_DFL
        finally:
            _signal.pthread_sigmask(_signal.SIG_SETMASK, mask)


def _dispatchers(hub: Hub) -> dict[int, _SignalDispatcher]:
    # In the hub's module_state (not a module global), so that a destroyed
    # hub's table goes with it.
    table: dict[int, _SignalDispatcher] | None = hub.module_state.get(_STATE_KEY)
    if table is None:
        table = hub.module_state[_STATE_KEY] = {}
    return table


_STATE_KEY = "greenpatch.hub.signal"


class SignalHandler:
    """An installed ``signal_handler``; ``cancel()`` removes it."""

    def __init__(
        self,
        dispatcher: _SignalDispatcher,
        handler: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self._dispatcher: _SignalDispatcher | None = dispatcher
        self.signum = dispatcher.signum
        self.handler = handler
        self.args = args
        self.kwargs = kwargs

    @property
    def active(self) -> bool:
        return self._dispatcher is not None

    def _run(self) -> None:
        if self._dispatcher is not None:  # not cancelled between signal and spawn
            self.handler(*self.args, **self.kwargs)

    def cancel(self) -> None:
        """Stop handling the signal; the last cancel of a signal restores Python's handler.

        Idempotent.  Must be called in the main thread, like ``signal.signal``.
        """
        dispatcher = self._dispatcher
        if dispatcher is None:
            return
        self._dispatcher = None
        dispatcher.remove(self)

    def __enter__(self) -> SignalHandler:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()

    def __repr__(self) -> str:
        try:
            name = _signal.Signals(self.signum).name
        except ValueError:
            name = str(self.signum)
        state = "active" if self.active else "cancelled"
        return f"<SignalHandler {name} {self.handler!r} {state}>"


def signal_handler(
    signum: int, handler: Callable[..., Any], *args: Any, **kwargs: Any
) -> SignalHandler:
    """On each arrival of ``signum``, run ``handler(*args, **kwargs)`` in a new greenlet.

    Needs the main thread's hub (libev's default loop).  Raises ValueError for
    signals that cannot be handled this way (SIGKILL, SIGSTOP, SIGCHLD, invalid
    numbers) and when called outside the main thread.
    """
    signum = int(signum)
    if signum not in _signal.valid_signals() or signum in _UNCATCHABLE:
        raise ValueError(f"signal {signum} cannot be handled")
    if signum == _signal.SIGCHLD:
        raise ValueError(
            "SIGCHLD belongs to the default loop's child watchers; watch a child "
            "process with hub.loop.child(pid) instead of a SIGCHLD handler"
        )
    if not callable(handler):
        raise TypeError(f"expected a callable handler, got {handler!r}")
    hub = get_hub()
    if not hub.loop.default:
        raise ValueError(
            "signal handlers can only be installed in the main thread: libev watches "
            "signals on its default loop, which belongs to the main thread's hub "
            f"(this is {hub!r})"
        )
    table = _dispatchers(hub)
    dispatcher = table.get(signum)
    if dispatcher is None:
        dispatcher = table[signum] = _SignalDispatcher(hub, signum)
    installed = SignalHandler(dispatcher, handler, args, kwargs)
    dispatcher.handlers.append(installed)
    return installed
