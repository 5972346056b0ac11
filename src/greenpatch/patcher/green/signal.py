"""Green ``signal``: Python handlers run between bytecodes, as in CPython, without hurting the hub.

What changes
------------
In the standard library a Python-level handler runs in the main thread,
between two bytecodes of whatever happens to run there: a loop that only polls
(``select(..., 0)``, a non-blocking ``recv``) or spins (``while True: pass``)
still sees its handlers run, and a handler that raises (pytest-timeout's
SIGALRM handler, ``KeyboardInterrupt``) interrupts it.  Under greenpatch the
main thread runs several greenlets, one of them the hub, and running the
user's handler in the hub at an arbitrary bytecode would break it (the handler
could not block; what it raises would come out of the middle of the loop's
bookkeeping).  So ``signal.signal(signum, handler)`` installs, through the real
``signal.signal``, a trampoline (``_trampoline``) that CPython calls between
bytecodes as usual, and that runs the user's handler according to which
greenlet the signal found running:

* the main greenlet (the hub's parent): ``handler(signum, frame)`` runs right
  there, exactly as in the stdlib: a polling or spinning main greenlet sees its
  handlers, and what the handler raises comes out where the main greenlet was;
* the hub (the main greenlet is waiting cooperatively: ``time.sleep``, a socket
  ``recv``, a lock, ``select``), or another greenlet: the handler runs in a new
  greenlet of the main hub, as soon as the hub runs its callbacks (at once when
  the hub had the signal), where it may block; what it raises is thrown into
  the main greenlet, which leaves its wait with it, as the stdlib raises it in
  the main thread.  The hub itself never sees the exception and goes on: other
  greenlets keep running, later waits work.  ``frame`` is then the frame where
  the main greenlet was suspended.  A greenlet other than the main one is
  never interrupted by a handler: it runs the handler only once it yields, so
  a greenlet that spins delays handlers (CPython would run them in the main
  thread at once; interrupting a greenlet would break the promise that
  greenlets only switch where they block).

The hub must also get back to Python promptly when it is blocked in the
kernel: CPython's C handler only sets a flag.  ``hub.loop``'s
``signal_wakes_default_loop`` puts a C handler in front of CPython's that also
wakes libev's default loop (see "Python-level signal handlers" in
``hub/_libev_build.py``), whichever thread took the signal.

Rejected: a libev signal watcher per signal (what this module did before, and
what ``greenpatch.signal_handler`` still does): libev's own C handler replaces
CPython's, so handlers ran only when the hub ran, never in a main greenlet that
polls or spins, and ``_thread.interrupt_main`` (which flags the Python-level
handler without a real signal) raised ``KeyboardInterrupt`` past the user's
handler.  Also rejected: running every handler in a new greenlet (it cannot
interrupt the main greenlet's busy loop), and running it in whatever greenlet
the signal finds (an exception would kill an unrelated task, and a handler that
blocks inside the hub would raise ``BlockingSwitchOutError``).

What stays the stdlib's
-----------------------
* ``SIG_DFL``, ``SIG_IGN`` and ``signal.default_int_handler`` go to the real
  ``signal.signal`` and set the real disposition (for SIGINT,
  ``KeyboardInterrupt`` is raised by Python's own handler; when it comes out of
  the hub, the hub passes it to the main greenlet).
* SIGCHLD keeps the stdlib behaviour entirely (its handler is installed as is):
  libev's default loop owns SIGCHLD while child watchers are active, and the
  green ``os`` module then calls a callable SIGCHLD handler itself each time its
  watchers reap children (see ``green/os.py``).
* SIGKILL/SIGSTOP, invalid numbers, wrong handler types and calls outside the
  main thread reach the real ``signal.signal``, which raises what it always did.
  A patched thread is not the main thread either, although it runs on the main
  OS thread: ``signal.signal`` raises the stdlib's ``ValueError`` there too.
  Libraries ask it that way whether they run in the main thread (trio: two
  trio loops in patched threads each took ``set_wakeup_fd`` and the second
  warned of a collision, an error under ``-W error``); greenlets that are not
  threads (``greenpatch.spawn``) count as the main thread, as in gevent.
* ``signal.getsignal`` returns what the user set, green or not.
* ``alarm``, ``setitimer``, ``pthread_kill``, ``set_wakeup_fd`` are untouched.

``signal.pause()`` is not cooperative.  Handlers installed before patching keep
their stdlib behaviour (a framework's handler may rely on running in whatever
code the signal interrupts).
"""

from __future__ import annotations

import signal as _stdlib
import sys
from types import FrameType
from typing import Any, Callable, Union

from greenlet import GreenletExit, getcurrent

from greenpatch.hub.greenlet import spawn
from greenpatch.hub.hub import Hub, get_hub, hub_of_this_thread
from greenpatch.hub.loop import signal_wakes_default_loop, wake_default_loop_for_signal
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

#: signum -> the user's handler, for signals whose real handler is ``_trampoline``.
_python_handlers: dict[int, Callable[[int, FrameType | None], Any]] = {}


def _in_main_thread() -> bool:
    # The originals: a patched threading names greenlets, not OS threads.
    main_ident = original("threading", "main_thread")().ident
    return bool(original("_thread", "get_ident")() == main_ident)


def _in_patched_thread() -> bool:
    """Whether the caller is a patched thread (a task ``_thread`` started)."""
    green_thread = sys.modules.get("greenpatch.patcher.green._thread")
    return green_thread is not None and green_thread.get_ident() in green_thread._running


def _dispatchable(signalnum: Any, handler: Any) -> bool:
    """Whether ``handler`` for ``signalnum`` goes through the trampoline (else: the real call)."""
    return (
        callable(handler)
        and isinstance(signalnum, int)
        and signalnum in _stdlib.valid_signals()
        and signalnum not in _REAL_ONLY
        and _in_main_thread()
    )


def signal(signalnum: int, handler: Handler) -> Handler:
    """``signal.signal``: ``handler`` runs between bytecodes, never inside the hub."""
    if _in_patched_thread():
        raise ValueError("signal only works in main thread of the main interpreter")
    if not _dispatchable(signalnum, handler):
        # Raises exactly what the stdlib raises (thread, range, handler type).
        result: Handler = _real_signal(signalnum, handler)
        previous = _python_handlers.pop(int(signalnum), None)
        return previous if previous is not None else result
    signum = int(signalnum)
    previous_handler = _python_handlers.get(signum)
    # The handler first: the trampoline may run as soon as it is installed.
    _python_handlers[signum] = handler  # type: ignore[assignment]
    try:
        real_previous: Handler = _real_signal(signum, _trampoline)
    except BaseException:
        if previous_handler is None:
            del _python_handlers[signum]
        else:
            _python_handlers[signum] = previous_handler
        raise
    # Every time: a real ``signal.signal`` call (ours included) replaces the
    # wake-up in front of CPython's C handler.
    signal_wakes_default_loop(signum)
    if previous_handler is not None:
        return previous_handler
    return real_previous


def take_over_sigint() -> None:
    """Put the default SIGINT handler behind the trampoline (the patch's ``after`` hook).

    Installed by CPython itself, ``default_int_handler`` raises
    ``KeyboardInterrupt`` in whichever greenlet runs when the signal is
    checked: a green thread's, whose end the interrupt then is (as an
    exception raised in a thread is), so a Ctrl-C could be lost.  Behind the
    trampoline it is raised in the main greenlet, or thrown into it when the
    hub or another greenlet had the signal -- where CPython raises it, in the
    main thread.  ``getsignal`` still answers ``default_int_handler``.
    """
    if _in_main_thread() and _real_getsignal(_stdlib.SIGINT) is _stdlib.default_int_handler:
        signal(_stdlib.SIGINT, _stdlib.default_int_handler)


def getsignal(signalnum: int) -> Handler:
    """``signal.getsignal``: the handler the user installed, green or not."""
    handler = _python_handlers.get(signalnum)
    if handler is not None:
        return handler
    result: Handler = _real_getsignal(signalnum)
    return result


# Named as the stdlib's own Python functions of ``signal`` are (pydoc, and
# CPython's test_signal, expect every non-builtin routine there to say so);
# pickling by name still finds these very functions.
signal.__module__ = getsignal.__module__ = "signal"


def _trampoline(signum: int, frame: FrameType | None) -> None:
    """The real Python-level handler of every green signal; CPython calls it between bytecodes."""
    handler = _python_handlers.get(signum)
    if handler is None:  # replaced by SIG_DFL/SIG_IGN since the signal was flagged
        return
    hub = hub_of_this_thread()
    current = getcurrent()
    if hub is None or current is hub.parent:
        # The main greenlet (or no hub yet): the stdlib's behaviour, exactly.
        # What the handler raises comes out where the main greenlet was.
        handler(signum, frame)
        return
    # The hub, at any point of its loop, or a greenlet that does not expect
    # to be interrupted: run the handler in a greenlet of its own.  Queueing a
    # callback is safe at any bytecode of the hub (an append to its deque).
    spawn(run_python_handler, handler, signum)


def interrupt_main(signum: int = _stdlib.SIGINT) -> None:
    """``_thread.interrupt_main`` that also wakes the main hub; for the green ``_thread``.

    The stdlib's ``interrupt_main`` flags the Python-level handler of
    ``signum`` without sending a signal, so the hub of the main thread, if it is
    blocked in the kernel, would not notice before its next event; the flag is
    set first, then the wake-up is sent, so that the hub's next return to
    Python runs the handler (through the trampoline when a green handler is
    installed: the user's SIGINT handler, not ``KeyboardInterrupt``).
    """
    real = original("_thread", "interrupt_main")
    if signum == _stdlib.SIGINT:
        real()  # Python 3.9 takes no argument
    else:
        real(signum)
    wake_default_loop_for_signal()


def _checkpoint() -> None:
    """A Python call: CPython runs pending signal handlers at a call's entry."""


def deliver_as_cpython(signum: int) -> None:
    """Deliver ``signum`` to its Python-level handler as CPython's C handler would.

    For a signal whose C handler is not CPython's (libev owns SIGCHLD while
    child watchers run): ``_thread.interrupt_main(signum)`` (3.10+) trips the
    signal -- the flag, and the byte to ``signal.set_wakeup_fd``'s descriptor
    that asyncio's child watchers wait for -- and the handler then runs at the
    next call, here, in this greenlet.  What it raises goes to the main
    greenlet, as ``run_python_handler`` does.  Runs in a greenlet of the main
    hub.  Rejected: calling the handler ourselves (no byte on the wake-up
    descriptor: asyncio's SafeChildWatcher never learnt of an exit), and
    writing that byte ourselves (the descriptor can be read back only by
    resetting it, which loses its ``warn_on_full_buffer``).
    """
    try:
        original("_thread", "interrupt_main")(signum)
        _checkpoint()
    except GreenletExit:
        raise
    except BaseException as exc:
        hub = get_hub()
        hub.loop.run_callback(_throw_into_main, hub, exc)


def run_python_handler(handler: Callable[[int, FrameType | None], Any], signum: int) -> None:
    """Call ``handler(signum, frame)``; what it raises goes to the main greenlet.

    Runs in a greenlet of the main hub.  Also used by ``green/os.py`` for
    SIGCHLD handlers while libev owns SIGCHLD.
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
