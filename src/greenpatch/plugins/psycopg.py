"""The ``psycopg`` plugin: sync psycopg 3 waits on the hub.

The problem
-----------
psycopg 3 does its protocol work in generators (``psycopg.generators``, in C
with psycopg-binary or psycopg-c) that yield whenever libpq would block, and a
*wait function* drives them: it waits for the connection's descriptor and
sends the readiness back.  Which wait function the sync API uses is chosen
once, when ``psycopg.waiting`` is imported: ``wait_c`` (C, its own ``poll()``
with the GIL released) whenever the C extension is there, unless
``PSYCOPG_WAIT_FUNC`` names another or ``_is_select_patched()`` finds gevent's
monkey-patching (it asks ``gevent.monkey.is_module_patched("select")``, and
then picks ``wait_poll``, which uses the patched ``select.poll``).  That check
knows gevent only, so under greenpatch psycopg picked ``wait_c``, and every
query held the hub's thread.

What we do
----------
The plugin's ``wait`` and ``wait_conn`` (same signatures and contract as
psycopg's: drive the generator, raise ``errors._WaitTimeout`` past
``timeout``) wait on the hub, and replace ``psycopg.waiting.wait`` and
``psycopg.waiting.wait_conn`` right after psycopg is imported.  psycopg's own
modules call them as ``waiting.wait(...)`` / ``waiting.wait_conn(...)``, an
attribute looked up at each call (nothing binds a copy with ``from .waiting
import wait``: connection, cursor, COPY, pipeline, notifies, cancel_safe all go
through ``Connection.wait`` or ``waiting.wait_conn``), so replacing the two
module attributes reaches every sync wait, whatever psycopg had chosen.

Rejected: choosing psycopg's own ``wait_poll`` or ``wait_selector``.  They
are cooperative only through the patched ``select``/``selectors``
(``patch_all(select=False)`` would silently make psycopg block again), and
``waiting`` binds ``DefaultSelector`` at import, so a psycopg imported before
``patch_all()`` keeps the blocking class.  Rejected too: making
``_is_select_patched()`` say True -- it runs once, at psycopg's import, which
is over by the time the plugin applies.

Readiness: a wait first asks ``poll()`` with a zero timeout (the original
``select.poll``, not the green one) whether the descriptor is ready already
-- a socket asked for writing nearly always is, and psycopg asks for
read-or-write before every query -- and waits on the hub only when not.  An
answer given without waiting counts toward the hub's "loops that poll" rule
(``hub.io.yielded_now_and_then``: every 64th yields), so a long COPY whose
data is always there still lets the others run.  ``interval`` (psycopg's
wake-up to check for Ctrl-C while in C) is accepted and not needed: signals
reach a greenlet waiting on the hub.

Interruptions
-------------
``Connection.wait`` already handles ``KeyboardInterrupt`` well: it cancels the
query on the server, keeps reading until the connection is idle, then
re-raises, and the connection stays usable.  It does that for the exceptions
in ``psycopg.connection._INTERRUPTED``; the plugin adds greenpatch's
``Timeout`` and ``GreenletExit`` (a kill) to them, so a ``Timeout`` around a
query leaves a usable connection too.

Limits: the async API (``AsyncConnection``) runs on asyncio and is left alone;
``Connection.cancel()`` is libpq's ``PQcancel``, a short blocking exchange
with the server (``cancel_safe()`` waits on the hub); import psycopg after
``patch_all()``, so that its connection locks are green (``psycopg._acompat``
binds ``threading.Lock`` at import).  ``registry.unpatch("psycopg")`` leaves
the wait functions in place (the registry restores swapped names only).
"""

from __future__ import annotations

from collections.abc import Generator
from time import monotonic
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

from greenlet import GreenletExit

from greenpatch.hub.io import READ, WRITE, wait_any, yielded_now_and_then
from greenpatch.hub.timeout import Timeout
from greenpatch.patcher.registry import PatchSpec

if TYPE_CHECKING:
    from greenpatch.patcher.api import PluginAPI
    from greenpatch.patcher.registry import Registry

__all__ = ["SPEC", "register", "wait", "wait_conn"]

# psycopg's Wait and Ready values (selectors.EVENT_READ and EVENT_WRITE);
# checked against the library when the plugin applies.
_R = 1
_W = 2
_RW = _R | _W

#: What psycopg's wait functions raise past their ``timeout``, and for a socket
#: that is gone: psycopg's own classes, bound when the plugin applies.
_WaitTimeout: type[BaseException] = TimeoutError
_OperationalError: type[BaseException] = OSError
#: poll() as the standard library has it (bound when the plugin applies).
_poll: Callable[[], Any] | None = None


def wait(
    gen: Generator[int, int, Any],
    fileno: int,
    interval: float = 0.0,
    timeout: float | None = None,
) -> Any:
    """Drive psycopg generator ``gen`` on descriptor ``fileno``, waiting on the hub.

    Returns what ``gen`` returns; raises psycopg's ``_WaitTimeout`` when it is not
    done after ``timeout`` seconds.
    """
    deadline = None if timeout is None else monotonic() + timeout
    try:
        wanted = next(gen)
        while True:
            wanted = gen.send(_wait_ready(fileno, wanted, deadline))
            if deadline is not None and monotonic() >= deadline:
                raise _WaitTimeout("wait timeout expired")
    except StopIteration as done:
        return done.value


def wait_conn(
    gen: Generator[tuple[int, int], int, Any],
    interval: float = 0.0,
    timeout: float | None = None,
) -> Any:
    """Like ``wait``, for the generators of connecting and cancelling, which name the
    descriptor with each wait (it changes when libpq tries another address)."""
    deadline = None if timeout is None else monotonic() + timeout
    try:
        fileno, wanted = next(gen)
        while True:
            fileno, wanted = gen.send(_wait_ready(fileno, wanted, deadline))
            if deadline is not None and monotonic() >= deadline:
                raise _WaitTimeout("wait timeout expired")
    except StopIteration as done:
        return done.value


def _wait_ready(fileno: int, wanted: int, deadline: float | None) -> int:
    """The readiness of ``fileno`` among ``wanted`` (psycopg's ``Ready``): at once when
    it is ready, else after waiting on the hub; 0 when ``deadline`` passed first."""
    ready = _ready_now(fileno, wanted)
    if ready:
        if not yielded_now_and_then():
            return ready
        # Others ran meanwhile: the answer may be stale, ask again.
    else:
        interest = (READ if wanted & _R else 0) | (WRITE if wanted & _W else 0)
        if not interest:
            raise _OperationalError(f"bad wait state from psycopg: {wanted!r}")
        timeout = None if deadline is None else max(0.0, deadline - monotonic())
        try:
            if not wait_any({fileno: interest}, timeout):
                return 0
        except OSError as exc:
            raise _OperationalError("connection socket closed") from exc
    return _ready_now(fileno, wanted)


def _ready_now(fileno: int, wanted: int) -> int:
    poller = _poll() if _poll is not None else None
    if poller is None:  # the plugin has not applied: no psycopg to serve
        raise RuntimeError("greenpatch's psycopg wait functions run once psycopg is patched")
    events = (_POLLIN if wanted & _R else 0) | (_POLLOUT if wanted & _W else 0)
    poller.register(fileno, events)
    ready = 0
    for _, revents in poller.poll(0):
        if revents & _POLLIN:
            ready |= _R
        if revents & _POLLOUT:
            ready |= _W
        if not ready and revents & (_POLLERR | _POLLHUP | _POLLNVAL):
            if revents & _POLLNVAL:
                raise _OperationalError("connection socket closed")
            # An error or hang-up: psycopg finds out what by reading.
            ready = wanted & _R or wanted
    return ready


# select's POLL* bits (the same on every platform with poll()).
_POLLIN = 0x001
_POLLOUT = 0x004
_POLLERR = 0x008
_POLLHUP = 0x010
_POLLNVAL = 0x020

#: What psycopg's ``Connection.wait`` treats as an interruption, beside its own.
INTERRUPTIONS: tuple[type[BaseException], ...] = (Timeout, GreenletExit)


# -- the registry row --------------------------------------------------------------------
def _install(target: ModuleType, registry: Registry) -> None:
    """Make the psycopg that was just imported wait on the hub."""
    global _WaitTimeout, _OperationalError, _poll
    import select

    from psycopg import connection, errors, waiting

    values = (int(waiting.Wait.R), int(waiting.Wait.W), int(waiting.Ready.NONE))
    if values != (_R, _W, 0):
        raise RuntimeError(
            f"psycopg {getattr(target, '__version__', '?')} has wait states {values}, "
            f"not the (1, 2, 0) the greenpatch plugin knows"
        )
    bits = (select.POLLIN, select.POLLOUT, select.POLLERR, select.POLLHUP, select.POLLNVAL)
    assert bits == (_POLLIN, _POLLOUT, _POLLERR, _POLLHUP, _POLLNVAL), bits
    _poll = registry.original("select", "poll")
    _WaitTimeout = errors._WaitTimeout
    _OperationalError = errors.OperationalError
    waiting.wait = wait
    waiting.wait_conn = wait_conn
    interrupted = tuple(getattr(connection, "_INTERRUPTED", (KeyboardInterrupt, SystemExit)))
    added = tuple(exc for exc in INTERRUPTIONS if exc not in interrupted)
    connection._INTERRUPTED = interrupted + added


SPEC = PatchSpec(
    name="psycopg",
    target="psycopg",
    green=__name__,
    flag="psycopg",
    names=(),
    on_import=True,
    after=_install,
    description="psycopg 3's sync connections wait on the hub (its wait functions)",
)


def register(api: PluginAPI) -> None:
    api.register(SPEC)
