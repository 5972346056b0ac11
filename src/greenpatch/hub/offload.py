"""Calls that cannot yield, run on a worker thread while the greenlet waits cooperatively.

    from greenpatch.threadpool import ThreadedConnection, blocking, run_in_thread

    row = run_in_thread(c_library.fetch, key)    # other greenlets run meanwhile

    @blocking                                    # every call of it runs on a worker
    def checksum(path): ...

    conn = ThreadedConnection.connect(MySQLdb.connect, host="127.0.0.1", ...)
    cur = conn.cursor()                          # a proxy too: same connection, same rules
    cur.execute("SELECT SLEEP(1)")               # on a worker; the hub keeps running

Why
---
A C client that does its own I/O (mysqlclient's libmysqlclient, FreeTDS,
librdkafka, OCI, libldap, libcurl) waits in C, where no patch reaches: the hub's
thread stops, and every greenlet with it (the harness's stall monitor reports
it as ``blocked``, its probe as "blocking").  Such libraries release the GIL
while they wait, so an OS thread can carry the wait instead: the calling
greenlet parks on an ``AsyncResult`` and the hub runs the others.  The threads
are the hub's ``ThreadPool`` (threadpool.py), which already delivers results to
the hub that asked and keeps its loop alive meanwhile; this module only decides
*how* calls go there.

``run_in_thread`` and ``blocking``
----------------------------------
``run_in_thread(func, *args, **kwargs)`` is ``get_threadpool().apply(func,
args, kwargs)``: the calling hub's default pool.  It returns what ``func``
returned, or raises what it raised, with its traceback (the worker's frames,
then the caller's).  Called in the hub greenlet itself (a loop callback) or in a
thread other than the pool's hub, it runs ``func`` directly, as ``apply`` does:
there is no greenlet to park.  ``@blocking`` makes a function always go that
way; ``@blocking(pool=...)`` picks a pool (a ``ThreadPool``, or a function that
returns one, so that a module-level decorator creates no hub at import).

The default pool has 10 threads and the resolver's look-ups share it: a program
with many long blocking calls wants a pool of its own, or the eleventh call
(and the next DNS look-up) queues.

What a ``Timeout`` does
-----------------------
It ends the *wait*, not the call: no C call can be stopped from outside.  The
greenlet gets ``Timeout`` (or ``GreenletExit`` when killed) at once; the call
runs on in its thread to its end, keeping that worker busy, and its result (or
exception) is dropped.  Bound the call itself with the library's own timeouts
(``read_timeout=`` for mysqlclient, a statement timeout on the server) when it
must not outlive its caller.

``ThreadedConnection``: one call at a time per connection
---------------------------------------------------------
A C driver's connection may be used by one thread at a time (DB-API
``threadsafety = 1``: "threads may share the module, but not connections");
two greenlets sending queries on one connection at once, each on its own
worker, would corrupt the protocol or crash.  So a ``ThreadedConnection``
gives these guarantees:

- every method call on the connection, on a cursor it made (the result of a
  ``derived`` method: ``cursor``, ``execute``, ``executemany`` by default),
  attribute assignment, ``with`` and iteration
  run on a worker, **one at a time**, in the order the greenlets asked (a FIFO
  ``Semaphore(1)`` of the hub, shared by the connection and its cursors);
- the turn is given back when the call *ends in its thread*, not when its
  waiter leaves: a call abandoned by ``Timeout`` keeps the connection until it
  finishes, and the next call starts after it, never beside it.  What the
  abandoned call did (a row inserted, a transaction opened) stands, and its
  caller does not know its outcome: roll back or close the connection;
- different connections overlap, up to the pool's size;
- attribute *reads* are direct (``cur.rowcount``, ``cur.description``,
  ``conn.Error``): they are plain fields, read after the call that set them;
- calls are not pinned to one thread: two calls may run on two workers, which
  libmysqlclient, libpq, FreeTDS and OCI accept (one thread at a time is their
  rule).  A driver that wants one thread for a connection's whole life
  (``sqlite3`` with ``check_same_thread``) gets a pool of its own:
  ``ThreadPool(maxsize=1, idle_timeout=...)`` long enough never to idle out,
  used for ``connect`` and passed as ``pool``.

Rejected: a lock taken inside the worker (every greenlet waiting for one busy
connection would hold a pool thread, starving the other connections); a thread
per connection by default (a thread for each idle connection of a pool of
hundreds); wrapping every callable attribute (a driver's exception classes are
attributes too, and ``except conn.Error`` must keep working: only methods bound
to the wrapped object are wrapped).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, Union, cast, overload

from greenlet import getcurrent

from greenpatch.hub.hub import get_hub
from greenpatch.hub.locks import Semaphore
from greenpatch.hub.threadpool import ThreadPool, get_threadpool

__all__ = ["ThreadedConnection", "blocking", "run_in_thread"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
PoolChoice = Union[ThreadPool, Callable[[], ThreadPool], None]

#: Rows taken from a wrapped iterator per trip to a worker.
ITER_BATCH = 100
#: Methods whose result shares the connection's turns (a cursor), unless it is
#: plain data (``Cursor.execute`` returns a row count in some drivers).
DERIVED = ("cursor", "execute", "executemany")
_PLAIN = (type(None), bool, int, float, str, bytes, bytearray, tuple, list, dict)


def run_in_thread(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Call ``func(*args, **kwargs)`` on a worker of the hub's default thread pool
    and wait for it without blocking the loop; return its result or raise its
    exception (with the worker's traceback).

    A ``Timeout`` or ``kill`` ends the wait only: the call runs on to its end in
    its thread and its outcome is dropped.
    """
    return get_threadpool().apply(func, args, kwargs)


def _pool_of(choice: PoolChoice) -> ThreadPool:
    if choice is None:
        return get_threadpool()
    if isinstance(choice, ThreadPool):
        return choice
    return choice()


@overload
def blocking(func: F, /) -> F: ...


@overload
def blocking(*, pool: PoolChoice = None) -> Callable[[F], F]: ...


def blocking(func: F | None = None, /, *, pool: PoolChoice = None) -> F | Callable[[F], F]:
    """Make every call of ``func`` run on a worker thread (``run_in_thread``).

    ``@blocking`` uses the calling hub's default pool; ``@blocking(pool=p)``
    uses ``p``, a ``ThreadPool`` or a function returning one (called at each
    call, so a decorator at module level makes no hub at import).
    """

    def decorate(target: F) -> F:
        @functools.wraps(target)
        def offloaded(*args: Any, **kwargs: Any) -> Any:
            return _pool_of(pool).apply(target, args, kwargs)

        return cast(F, offloaded)

    return decorate if func is None else decorate(func)


def _take(iterator: Iterator[Any], count: int) -> list[Any]:
    return list(itertools.islice(iterator, count))


class _Threaded:
    """A proxy whose method calls run on ``pool``, one at a time under ``gate``."""

    # Slots: the proxy's own state never mixes with the driver's attributes,
    # which __getattr__/__setattr__ forward.
    __slots__ = ("__wrapped__", "_derived", "_gate", "_pool")

    __wrapped__: Any
    _derived: frozenset[str]
    _gate: Semaphore
    _pool: ThreadPool

    def __init__(self, target: Any, gate: Semaphore, pool: ThreadPool, derived: frozenset[str]):
        object.__setattr__(self, "__wrapped__", target)
        object.__setattr__(self, "_gate", gate)
        object.__setattr__(self, "_pool", pool)
        object.__setattr__(self, "_derived", derived)

    # -- the one way to the worker ------------------------------------------------
    def _call(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        pool, gate = self._pool, self._gate
        if getcurrent() is get_hub():
            raise RuntimeError(
                f"{type(self).__name__}: called in the hub greenlet (a loop callback), "
                "which cannot wait for its turn on the connection; call it from a greenlet"
            )
        gate.acquire()  # our turn on the connection (FIFO among greenlets)
        try:
            result = pool.spawn(func, *args, **kwargs)
        except BaseException:
            gate.release()
            raise
        # The turn goes back when the call ends in its thread -- not when this
        # greenlet stops waiting (a Timeout): never two calls on one connection.
        result.rawlink(lambda _: gate.release())
        return result.get()

    def _wrap(self, name: str, value: Any) -> Any:
        if value is self.__wrapped__:
            return self  # a fluent method (``__enter__``, sqlite3's ``Cursor.execute``)
        if name in self._derived and not isinstance(value, _PLAIN):
            # A cursor: it talks over the same connection, so it takes the same turns.
            return _Threaded(value, self._gate, self._pool, self._derived)
        return value

    # -- attributes -----------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        value = getattr(self.__wrapped__, name)
        if getattr(value, "__self__", None) is not self.__wrapped__ or isinstance(value, type):
            return value  # a field, a class, a function stored on the object
        method = value

        @functools.wraps(method)
        def threaded(*args: Any, **kwargs: Any) -> Any:
            return self._wrap(name, self._call(method, args, kwargs))

        return threaded

    def __setattr__(self, name: str, value: Any) -> None:
        # A property may talk to the server (``autocommit`` in some drivers).
        self._call(setattr, (self.__wrapped__, name, value), {})

    def __delattr__(self, name: str) -> None:
        self._call(delattr, (self.__wrapped__, name), {})

    # -- protocols ------------------------------------------------------------------
    def __enter__(self) -> Any:
        return self._wrap(
            "__enter__", self._call(type(self.__wrapped__).__enter__, (self.__wrapped__,), {})
        )

    def __exit__(self, *exc_info: Any) -> Any:
        return self._call(type(self.__wrapped__).__exit__, (self.__wrapped__, *exc_info), {})

    def __iter__(self) -> Iterator[Any]:
        # Rows come in batches: one trip to a worker per ITER_BATCH rows, not per row.
        iterator = self._call(iter, (self.__wrapped__,), {})
        while True:
            batch = self._call(_take, (iterator, ITER_BATCH), {})
            yield from batch
            if len(batch) < ITER_BATCH:
                return

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.__wrapped__!r}>"


class ThreadedConnection(_Threaded):
    """A C driver's connection whose calls run on worker threads, one at a time.

    ``ThreadedConnection(conn, pool=None, derived=DERIVED)``: ``pool`` is the
    ``ThreadPool`` to use (default: the calling hub's), ``derived`` the methods
    whose results share the connection's turns (``cursor``, and ``execute`` /
    ``executemany``, which return a cursor in sqlite3 and psycopg 3): a result
    that is not plain data comes back threaded too.  See the module's
    docstring for what is guaranteed.
    """

    __slots__ = ()

    def __init__(
        self,
        connection: Any,
        *,
        pool: ThreadPool | None = None,
        derived: tuple[str, ...] = DERIVED,
    ) -> None:
        if isinstance(connection, _Threaded):
            raise TypeError(f"{connection!r} is threaded already")
        chosen = pool if pool is not None else get_threadpool()
        super().__init__(connection, Semaphore(1), chosen, frozenset(derived))

    @classmethod
    def connect(
        cls, factory: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> ThreadedConnection:
        """``factory(*args, **kwargs)`` (``MySQLdb.connect``, ...) on a worker of the
        default pool -- connecting blocks too -- and the connection, threaded."""
        return cls(run_in_thread(factory, *args, **kwargs))
