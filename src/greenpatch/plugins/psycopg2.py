"""The ``psycopg2`` plugin: libpq's waits go through the hub.

The problem
-----------
psycopg2 is a C extension over libpq, and libpq waits for the server in C, in
its own ``poll()`` on a socket Python never sees.  Patching ``socket`` and
``select`` does not reach it: under ``patch_all()`` every ``connect()`` and
``execute()`` held the hub's thread until the server answered, and no other
greenlet ran meanwhile (20 greenlets running ``SELECT pg_sleep(0.3)`` took 6 s).

What we do
----------
psycopg2 has a hook for exactly this: ``psycopg2.extensions.set_wait_callback``.
With a callback registered, psycopg2 drives libpq in non-blocking mode (its
"green" mode: ``PQconnectStart``, ``PQsendQuery``) and calls the callback
whenever libpq would block; the callback polls the connection
(``conn.poll()``: ``POLL_OK``, ``POLL_READ``, ``POLL_WRITE``) and waits for its
descriptor.  Ours, ``wait_callback``, waits on the hub (``hub.io.wait_read``
and ``wait_write``), so connecting, queries, ``commit()``, and a
``conn.cancel()`` sent from another greenlet all let the other greenlets run.

The plugin registers an ``on_import`` row: ``patch_all()`` does not import
psycopg2; the callback is installed right after psycopg2's own code has run,
before the ``import psycopg2`` that loaded it returns.  ``patch_all(psycopg2=False)``
installs nothing.

Interruptions
-------------
A ``Timeout``, ``KeyboardInterrupt``, a greenlet's kill -- anything thrown into
the greenlet while it waits -- first stops the query on the server
(``conn.cancel()``), then goes on polling, on the hub, until the server has
answered (at most ``CANCEL_WAIT`` seconds), and only then propagates.  Without
the cancel the server would run the abandoned statement to its end (the
backend does not notice a client that stopped listening), holding its locks.

psycopg2 then **closes the connection**: it does so whenever a wait callback
raises (``green_panic`` in its ``green.c``: it cannot tell an interruption
from a network error, and a half-read result cannot be resumed), so the
connection cannot be reused after the interruption; a pool discards it as it
discards any closed connection.  Rejected: swallowing the interruption and
returning normally, which keeps the connection (``execute()`` then raises
``QueryCanceledError``, as ``psycopg2.extras.wait_select`` does for Ctrl-C):
a ``Timeout`` would never reach its ``with`` block and a kill would not end
the greenlet -- control flow turned into a database error that an ``except
psycopg2.Error`` may swallow.

A callback that was there before
--------------------------------
psycopg2 has one process-wide callback.  When one is already registered (by
the program, or psycogreen's for gevent) when the plugin applies, the plugin
leaves it in place and says so with a ``GreenpatchWarning``: the program chose
it, and replacing it silently would change its behaviour behind its back.  Set
``wait_callback`` yourself, or unset yours first, to get greenpatch's.

What green mode costs
---------------------
psycopg2 refuses some features while a wait callback is registered: the COPY
methods (``copy_from``, ``copy_to``, ``copy_expert``), large objects
(``conn.lobject``) and replication (``start_replication``) raise
``ProgrammingError: ... cannot be used with an asynchronous callback``.
``without_wait_callback()`` lifts the callback for a block, so that they work,
blocking the hub as they did before the plugin.  A connection is also used by
one greenlet at a time: psycopg2 holds its connection's lock (a pthread mutex)
while the callback waits, so ``commit()``, ``rollback()``, ``close()`` or
``reset()`` called by a second greenlet on a connection whose query is in
flight blocks the OS thread on that mutex, and the first greenlet can never
run again to release it (``execute()`` on a busy connection raises
``ProgrammingError`` instead; ``cancel()`` takes no lock and is safe).  See
``docs/plugins/psycopg.md``.

``registry.unpatch("psycopg2")`` leaves the callback registered (the registry
restores swapped names only); ``psycopg2.extensions.set_wait_callback(None)``
removes it.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from time import monotonic
from types import ModuleType
from typing import TYPE_CHECKING, Any

from greenpatch.hub.io import wait_read, wait_write
from greenpatch.patcher.diagnostics import GreenpatchWarning
from greenpatch.patcher.registry import PatchSpec

if TYPE_CHECKING:
    from greenpatch.patcher.api import PluginAPI
    from greenpatch.patcher.registry import Registry

__all__ = ["CANCEL_WAIT", "SPEC", "register", "wait_callback", "without_wait_callback"]

# psycopg2.extensions' poll states and setup status (documented, unchanged since
# 2.2); checked
# against the library when the plugin applies, so a change fails the import
# instead of making every query spin.
POLL_OK = 0
POLL_READ = 1
POLL_WRITE = 2
#: ``conn.status`` while connecting (psycopg2.extensions.STATUS_SETUP).
STATUS_SETUP = 0

#: Seconds an interrupted query may take to answer its cancel before the
#: interruption propagates anyway (psycopg 3 gives its own Ctrl-C handling 5 s).
CANCEL_WAIT = 5.0


def wait_callback(conn: Any) -> None:
    """psycopg2's wait callback: poll ``conn`` until it is done, waiting on the hub.

    Registered by the plugin; usable by hand too
    (``psycopg2.extensions.set_wait_callback(wait_callback)``).
    """
    # While connecting, libpq's connect_timeout is ours to enforce: libpq checks
    # it only in its blocking PQconnectdb, never in the PQconnectPoll loop that
    # green mode runs (a silent server was waited for for ever).
    connecting = conn.status == STATUS_SETUP
    timeout = _connect_timeout(conn) if connecting else None
    deadline = 0.0
    fileno = -1
    while True:
        state = conn.poll()
        if state == POLL_OK:
            return
        if state == POLL_READ:
            wait = wait_read
        elif state == POLL_WRITE:
            wait = wait_write
        else:
            raise conn.OperationalError(f"unexpected state from poll(): {state!r}")
        remaining = None
        if timeout is not None:
            if conn.fileno() != fileno:  # libpq's timeout is per address it tries
                fileno = conn.fileno()
                deadline = monotonic() + timeout
            remaining = deadline - monotonic()
            if remaining <= 0:
                raise conn.OperationalError(_timed_out(conn))
        try:
            wait(conn.fileno(), remaining)
        except TimeoutError:
            raise conn.OperationalError(_timed_out(conn)) from None
        except OSError:
            # The descriptor is gone (closed under us): nothing left to cancel,
            # and psycopg2 reports the broken connection itself.
            raise
        except BaseException:
            if not connecting:
                _give_up_query(conn)
            raise


def _connect_timeout(conn: Any) -> float | None:
    """libpq's connect_timeout for ``conn`` (its connection string or PGCONNECT_TIMEOUT):
    none when absent or not positive.  (Older libpq documents a 2 s minimum; the
    blocking connect of libpq 17, measured, takes 1 as 1 s, and so do we.)"""
    try:
        value = conn.info.dsn_parameters.get("connect_timeout")
        seconds = int(value) if value else 0
    except (ValueError, AttributeError, TypeError):
        return None
    return float(seconds) if seconds > 0 else None


def _timed_out(conn: Any) -> str:
    try:
        where = f'connection to server at "{conn.info.host}", port {conn.info.port} failed'
    except Exception:
        where = "connection to server failed"
    return f"{where}: timeout expired"


def _give_up_query(conn: Any) -> None:
    """Ask the server to stop ``conn``'s query and wait, on the hub, until it has.

    A second interruption while waiting propagates at once (it is chained to the
    first by Python): someone who presses Ctrl-C twice wants out now.
    """
    try:
        conn.cancel()
    except Exception:
        # Still connecting ("asynchronous connection attempt underway"), or the
        # connection is broken: there is no query to stop.
        return
    deadline = monotonic() + CANCEL_WAIT
    while True:
        try:
            state = conn.poll()
        except Exception:
            return  # the error the cancel provokes, or a dead connection
        remaining = deadline - monotonic()
        if state not in (POLL_READ, POLL_WRITE) or remaining <= 0:
            return
        wait = wait_read if state == POLL_READ else wait_write
        try:
            wait(conn.fileno(), remaining)
        except OSError:  # TimeoutError included: the server did not answer in time
            return


# -- lifting the callback for what green mode refuses ---------------------------------
_lifted = 0
_saved: Any = None


@contextmanager
def without_wait_callback() -> Iterator[None]:
    """No wait callback inside the block: psycopg2's COPY methods, large objects
    and replication work again, blocking the hub while libpq waits.

    Process-wide, as psycopg2's callback is: a query that another greenlet
    starts inside the block blocks too.  Blocks may nest and overlap (between
    greenlets); the callback comes back when the last one ends.
    """
    global _lifted, _saved
    extensions = _extensions()
    if _lifted == 0:
        _saved = extensions.get_wait_callback()
        extensions.set_wait_callback(None)
    _lifted += 1
    try:
        yield
    finally:
        _lifted -= 1
        if _lifted == 0:
            extensions.set_wait_callback(_saved)
            _saved = None


def _extensions() -> Any:
    module = sys.modules.get("psycopg2.extensions")
    if module is None:
        import psycopg2.extensions as module  # type: ignore[import-untyped, no-redef]
    return module


# -- the registry row --------------------------------------------------------------------
def _install(target: ModuleType, registry: Registry) -> None:
    """Register ``wait_callback`` with the psycopg2 that was just imported."""
    extensions = _extensions()
    states = (
        extensions.POLL_OK,
        extensions.POLL_READ,
        extensions.POLL_WRITE,
        extensions.STATUS_SETUP,
    )
    if states != (POLL_OK, POLL_READ, POLL_WRITE, STATUS_SETUP):
        raise RuntimeError(
            f"psycopg2 {getattr(target, '__version__', '?')} has poll states and setup "
            f"status {states}, not the (0, 1, 2, 0) the greenpatch plugin knows"
        )
    current = extensions.get_wait_callback()
    if current is None:
        extensions.set_wait_callback(wait_callback)
    elif current is not wait_callback:
        name = getattr(current, "__qualname__", None) or repr(current)
        module = getattr(current, "__module__", None)
        warnings.warn(
            f"psycopg2 already has a wait callback ({module}.{name}); greenpatch leaves it "
            f"in place instead of installing its own. If it does not wait on greenpatch's "
            f"hub, queries block every greenlet: call psycopg2.extensions.set_wait_callback("
            f"greenpatch.plugins.psycopg2.wait_callback) to use greenpatch's.",
            GreenpatchWarning,
            stacklevel=2,
        )


SPEC = PatchSpec(
    name="psycopg2",
    target="psycopg2",
    green=__name__,
    flag="psycopg2",
    names=(),
    on_import=True,
    after=_install,
    description="psycopg2's queries wait on the hub (a libpq wait callback)",
)


def register(api: PluginAPI) -> None:
    api.register(SPEC)
