"""Green ``signal``: handlers installed with ``signal.signal`` run in a greenlet.

What changes
------------
In the standard library a Python-level handler runs in the main thread, between
two bytecodes of whatever happens to be running there.  Under greenpatch that
may be the hub greenlet itself (the handler could then not block: any wait
would raise ``BlockingSwitchOutError``) or any task.  After patching,
``signal.signal(signum, handler)`` installs ``handler`` through the hub's
``signal_handler`` instead: libev catches the signal and the handler runs
``handler(signum, frame)`` in a new greenlet of the main hub, where it may
sleep, do I/O, or wait on results.  ``frame`` is the frame where the main
greenlet was suspended, the closest analogue of "the frame that was
interrupted".

An exception raised by the handler is thrown into the main greenlet, as the
stdlib raises it in the main thread: ``signal.alarm`` with a handler that raises
still interrupts a blocking ``time.sleep``/``sock.recv`` of the main greenlet,
and ``raise SystemExit`` in a SIGTERM handler still ends the program.

What stays the stdlib's
-----------------------
* ``SIG_DFL``, ``SIG_IGN`` and ``signal.default_int_handler`` go to the real
  ``signal.signal``: they restore the real disposition (for SIGINT,
  ``KeyboardInterrupt`` is raised by Python's own handler, and the hub passes
  it to the main greenlet).
* SIGCHLD keeps the stdlib behaviour entirely (the handler is Python-level):
  libev's default loop owns SIGCHLD while child watchers are active, and the
  green ``os`` module then calls a callable SIGCHLD handler itself each time its
  watchers reap children (see ``green/os.py``).
* SIGKILL/SIGSTOP, invalid numbers, wrong handler types and calls outside the
  main thread reach the real ``signal.signal``, which raises what it always did.
* ``signal.getsignal`` returns what the user set, green or not.
* ``alarm``, ``setitimer``, ``pthread_kill``, ``set_wakeup_fd`` are untouched.

Limits: a handler runs when the hub runs, not between two bytecodes.  Code
that signals itself and expects the handler to have run when ``os.kill``
returns must first let the hub run (any blocking call, e.g. ``time.sleep(0.01)``);
a main thread stuck in an unpatched blocking C call, or a loop that never
yields, delays the handler.  ``signal.pause()`` is not cooperative.

Rejected: installing a real Python-level handler that spawns the user's
handler (see ``hub/signal.py`` for why libev's watcher is the better wake-up),
and converting handlers installed *before* patching (a framework's handler may
rely on running synchronously; they keep their stdlib semantics).
"""

from __future__ import annotations

import signal as _stdlib
from types import FrameType
from typing import Any, Callable, Union

from greenlet import GreenletExit

from greenpatch.hub.hub import Hub, get_hub
from greenpatch.hub.signal import SignalHandler, signal_handler
from greenpatch.patcher.api import original

__target__ = "signal"
__implements__ = ["signal", "getsignal"]

Handler = Union[Callable[[int, Union[FrameType, None]], Any], int, _stdlib.Handlers, None]

# The originals: this module may be imported after the names were swapped
# (``green/os.py`` imports it whether or not the ``signal`` patch is on).
_real_signal: Any = original("signal", "signal")
_real_getsignal: Any = original("signal", "getsignal")

#: Signals that keep their stdlib (Python-level or kernel) semantics.
_REAL_ONLY = frozenset({_stdlib.SIGKILL, _stdlib.SIGSTOP, _stdlib.SIGCHLD})

#: signum -> the user's handler, for signals dispatched in greenlets.
_python_handlers: dict[int, Callable[[int, FrameType | None], Any]] = {}
#: signum -> the hub handle that runs ``_dispatch`` for it.
_handles: dict[int, SignalHandler] = {}
#: True while we cancel a hub handle: the hub then restores the disposition
#: through ``signal.getsignal``/``signal.signal`` -- our functions, once the
#: names are swapped -- and must see the real ones.
_restoring = False


def _in_main_thread() -> bool:
    # The originals: a patched threading names greenlets, not OS threads.
    main_ident = original("threading", "main_thread")().ident
    return bool(original("_thread", "get_ident")() == main_ident)


def _dispatchable(signalnum: Any, handler: Any) -> bool:
    """Whether ``handler`` for ``signalnum`` is run in greenlets (else: the real call)."""
    return (
        callable(handler)
        and handler is not _stdlib.default_int_handler
        and isinstance(signalnum, int)
        and signalnum in _stdlib.valid_signals()
        and signalnum not in _REAL_ONLY
        and _in_main_thread()
    )


def signal(signalnum: int, handler: Handler) -> Handler:
    """``signal.signal``: a callable handler runs in a greenlet of the main hub."""
    if _restoring or not _dispatchable(signalnum, handler):
        # Raises exactly what the stdlib raises (thread, range, handler type).
        result: Handler = _real_signal(signalnum, handler)
        if _restoring:
            return result
        previous = _python_handlers.get(int(signalnum))
        if previous is not None:
            _uninstall(int(signalnum))
            return previous
        return result
    signum = int(signalnum)
    previous_handler: Handler = _python_handlers.get(signum) or _real_getsignal(signum)
    _python_handlers[signum] = handler  # type: ignore[assignment]
    if signum not in _handles:
        _handles[signum] = signal_handler(signum, _dispatch, signum)
    return previous_handler


def getsignal(signalnum: int) -> Handler:
    """``signal.getsignal``: the handler the user installed, green or not."""
    if not _restoring:
        handler = _python_handlers.get(signalnum)
        if handler is not None:
            return handler
    result: Handler = _real_getsignal(signalnum)
    return result


def _uninstall(signum: int) -> None:
    # The real disposition is already in place (the caller set it first), so
    # Python's table holds what the hub will restore once libev lets go.
    global _restoring
    _python_handlers.pop(signum, None)
    handle = _handles.pop(signum, None)
    if handle is None:
        return
    _restoring = True
    try:
        handle.cancel()
    finally:
        _restoring = False


def _dispatch(signum: int) -> None:
    """In a new greenlet of the main hub, for each arrival of ``signum``."""
    handler = _python_handlers.get(signum)
    if handler is not None:  # not replaced by SIG_DFL between signal and spawn
        run_python_handler(handler, signum)


def run_python_handler(handler: Callable[[int, FrameType | None], Any], signum: int) -> None:
    """Call ``handler(signum, frame)``; what it raises goes to the main greenlet.

    Also used by ``green/os.py`` for SIGCHLD handlers while libev owns SIGCHLD.
    """
    hub = get_hub()
    main = hub.parent
    frame = main.gr_frame if main is not None else None
    try:
        handler(signum, frame)
    except GreenletExit:
        raise  # the handler's own greenlet was killed: nothing for main
    except BaseException as exc:
        # Thrown from a loop callback, not from here: this greenlet must finish
        # (it is a reused worker), and the hub resumes after the throw returns.
        hub.loop.run_callback(_throw_into_main, hub, exc)


def _throw_into_main(hub: Hub, exc: BaseException) -> None:
    main = hub.parent
    if main is None or main.dead:
        hub.handle_error("signal handler", type(exc), exc, exc.__traceback__)
        return
    main.throw(exc)
