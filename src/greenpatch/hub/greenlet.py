"""``Greenlet``: a task run by a reusable worker greenlet of the hub.

Why tasks are not greenlets
---------------------------
Creating a ``greenlet.greenlet`` costs far more than switching to one: on
CPython 3.11+ each new greenlet gets its own frame data stack, and from its
start to its end a greenlet costs about 3.8 us here (8.9 us when CPython maps
and unmaps that stack itself; the hub serves it from slabs, see
``_libev_build.py``) against 0.15 us for a switch.  So a
``Greenlet`` is a plain object describing work, and the hub keeps a pool of
*worker* greenlets that run one task after another.  A worker that finishes a
task looks at the head of the loop's callback queue: when the next entry starts
another task, it runs it in place (no switch to the hub and back), which keeps
FIFO order and makes spawn+join of many short tasks cheap.

Consequences, by design:

* ``greenlet.getcurrent()`` returns the worker; ``greenpatch.getcurrent()``
  returns the running ``Greenlet`` task (use it for identity, e.g. green
  ``threading.get_ident``).
* Each task starts with an empty ``contextvars`` context, like a new greenlet.
* Everything that throws into a task (``kill``, ``Timeout``) goes through
  ``Greenlet.throw``, which checks that the worker still runs *that* task.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any, Callable

from greenlet import GreenletExit, getcurrent
from greenlet import greenlet as RawGreenlet

from greenpatch.hub.hub import Hub, Waiter, get_hub, getcurrent_task, hub_of_this_thread
from greenpatch.hub.timeout import Timeout, wait_until_timeout

__all__ = [
    "Greenlet",
    "getcurrent_task",
    "spawn",
    "spawn_later",
]

_NEW, _SCHEDULED, _RUNNING, _DONE = range(4)
_STATE_NAMES = {_NEW: "new", _SCHEDULED: "scheduled", _RUNNING: "running", _DONE: "dead"}
_counter = itertools.count(1)
_UNSET: Any = object()

#: Idle workers kept per hub; beyond this, finished workers are let go.
MAX_IDLE_WORKERS = 1024
#: Where a hub's parked workers are kept (``Hub.module_state``): a list of
#: worker greenlets, the most recently parked last.
_IDLE_WORKERS = "greenpatch.hub.greenlet.idle_workers"


class _Worker(RawGreenlet):  # type: ignore[misc]
    """A greenlet that runs ``Greenlet`` tasks one after another."""

    # A slot, so that the worker never gets an instance dict: CPython 3.11
    # specialises ``worker.switch`` (every wake-up of a task) only on a
    # greenlet whose dict was never created, and reads a slot four times faster
    # than a dict entry.  Set by ``_start_task`` before the worker first runs.
    __slots__ = ("task",)
    task: Greenlet | None

    def __repr__(self) -> str:
        return f"<worker running {getattr(self, 'task', None)!r}>"


def _task_lane(hub: Hub) -> Any:
    """The hub's lane of tasks to start, made by its first spawn.

    ``spawn`` appends the task to ``hub.task_lane`` and ``hub.task_lane_entry``
    to the callback queue: no allocation per task (see ``CallbackQueue``,
    "Lanes"), where ``(_start_task, (hub, task))`` cost two tuples, which the
    collector counted and scanned while thousands waited to start.
    """
    lane = hub.task_lane = hub.loop.lane()
    hub.task_lane_entry = (_start_next, (lane,))
    return lane


def _queue_start(hub: Hub, task: Greenlet) -> None:
    """Queue ``task``'s start in FIFO order with the hub's other callbacks."""
    try:
        lane = hub.task_lane
    except AttributeError:  # the hub's first task
        lane = _task_lane(hub)
    lane.append(task)
    hub._callbacks.append(hub.task_lane_entry)


def _start_next(lane: Any) -> None:
    """Loop callback (the lane's entry): start the task at the lane's head."""
    task = lane.popleft()
    _start_task(task.hub, task)


def _start_task(hub: Hub, task: Greenlet) -> None:
    """Hand ``task`` to an idle worker (or a new one)."""
    if task._state != _SCHEDULED:
        return  # killed before it started
    try:
        idle = hub.module_state[_IDLE_WORKERS]
    except KeyError:  # the hub's first task
        idle = hub.module_state[_IDLE_WORKERS] = []
    if idle:
        idle.pop().switch(task)
    else:
        # The first task rides on the worker, not in the arguments of its first
        # switch: a greenlet holds those (the call of its run function) for as
        # long as it lives, so every worker would pin its first task, with the
        # task's value or exception and traceback, for good (and a box to
        # empty would cost two objects per new worker for the collector).
        # Rejected: passing the hub and the idle list as arguments (two
        # lookups less in the worker, but 2% more instructions per new worker:
        # greenlet's first call with arguments is dearer).
        worker = _Worker(_worker_main, hub)
        worker.task = task
        worker.switch()


def _worker_main() -> None:
    worker = getcurrent()
    task = worker.task
    hub = worker.parent
    callbacks = hub.loop._callbacks
    idle = hub.module_state[_IDLE_WORKERS]
    try:
        lane = hub.task_lane
    except AttributeError:  # the hub's first task came from start_later
        lane = _task_lane(hub)
    start_entry = hub.task_lane_entry
    # Each task gets a fresh contextvars context: a new worker starts with an
    # empty one (gr_context None), a worker that ran a task is reset when it
    # takes the next one.
    while True:
        if task._state == _SCHEDULED:
            worker.task = task
            task._execute(worker)
            worker.task = None
        # Run the next queued task in place when it is next in line anyway.
        if callbacks and callbacks[0] is start_entry:
            callbacks.popleft()
            task = lane.popleft()
            worker.gr_context = None
            continue
        if len(idle) >= MAX_IDLE_WORKERS:
            return  # let this worker die; its parent (the hub) resumes
        # Likewise the finished task: its value, or its exception with the
        # traceback's frames and their locals, must die with the last user
        # reference to the Greenlet, not when this worker next runs a task.
        task = None
        idle.append(worker)
        task = hub.switch()
        while not isinstance(task, Greenlet):
            # A stray resume (nothing should send one): stay parked.
            task = hub.switch()
        worker.gr_context = None


class Greenlet:
    """A unit of work scheduled on the hub: ``Greenlet(fn, *args, **kwargs).start()``.

    Subclasses may override ``_run`` instead of passing ``fn``.
    """

    __slots__ = (
        "__dict__",
        "__weakref__",
        "_exc_info",
        "_kwargs",
        "_links",
        "_name",
        "_start_timer",
        "_state",
        "_value",
        "_worker",
        "args",
        "hub",
        "run",
    )

    # Set by ``_prepare`` (for ``__init__`` and ``spawn`` alike).
    hub: Hub
    run: Callable[..., Any]
    args: tuple[Any, ...]
    _kwargs: dict[str, Any] | None  # None rather than an empty dict
    _state: int
    _links: list[Callable[[Greenlet], Any]] | None
    # Left unset until needed, and read with a default where they may be unset:
    # every store ``spawn`` does not make is about 1% of a spawn, and the
    # slots do not all apply to every task (a successful task has no
    # ``_exc_info``, few are named, only ``start_later`` has a start timer).
    # Rejected: ``__getattr__`` defaults, which would stop CPython 3.11 from
    # specialising every attribute read on a Greenlet.
    _value: Any  # set by _finish
    _exc_info: tuple[Any, Any, Any] | None  # set when the task fails or is killed
    _worker: RawGreenlet | None  # set while the task runs
    _start_timer: Any  # set by start_later
    _name: str | None  # set when named (by the user or, "Greenlet-N", when first asked)

    def __init__(self, run: Callable[..., Any] | None = None, *args: Any, **kwargs: Any) -> None:
        # A subclass may set ``name`` before calling Greenlet.__init__ (the
        # gevent tutorial's actors do): _prepare leaves ``_name`` alone.
        _prepare(self, self._run if run is None else run, args, kwargs)

    def _run(self) -> Any:
        """Override in a subclass to define the work when no ``run`` is passed."""
        raise NotImplementedError("pass a function to Greenlet() or override _run")

    # -- scheduling -----------------------------------------------------------
    # Both pass their arguments to the constructor untouched, as gevent does, so
    # that a subclass with its own __init__ signature can be spawned too.
    @classmethod
    def spawn(cls, *args: Any, **kwargs: Any) -> Greenlet:
        glet = cls(*args, **kwargs)
        glet.start()
        return glet

    @classmethod
    def spawn_later(cls, seconds: float, *args: Any, **kwargs: Any) -> Greenlet:
        glet = cls(*args, **kwargs)
        glet.start_later(seconds)
        return glet

    def start(self) -> None:
        """Schedule the task to run as soon as possible (no-op if already started)."""
        if self._state == _NEW:
            self._state = _SCHEDULED
            _queue_start(self.hub, self)

    def start_later(self, seconds: float) -> None:
        if self._state == _NEW:
            self._state = _SCHEDULED
            self._start_timer = self.hub.loop.call_later(seconds, self._start_now)

    def _start_now(self) -> None:
        self._start_timer = None
        _start_task(self.hub, self)

    def _execute(self, worker: RawGreenlet) -> None:
        self._state = _RUNNING
        self._worker = worker
        run = self.run
        args = self.args
        try:
            # With a fixed number of positional arguments, CPython 3.11 runs a
            # Python function in this C frame of the interpreter; ``run(*args)``
            # nests a new one, 370 bytes more of C stack that greenlet copies
            # out and back in at every switch of the task.
            if self._kwargs:
                result = run(*args, **self._kwargs)
            elif not args:
                result = run()
            elif len(args) == 1:
                result = run(args[0])
            elif len(args) == 2:
                result = run(args[0], args[1])
            else:
                result = run(*args)
        except GreenletExit as exc:
            self._finish(exc, None)
        except BaseException:
            self._finish(None, sys.exc_info())
        else:
            # _finish(result, None), inline: the path of every task that
            # returns, where the call and its tests for an error were 6% of a
            # sleeper's instructions.  ``_exc_info`` stays unset (no error).
            self._state = _DONE
            self._worker = None
            self._value = result
            self.args = ()
            self._kwargs = None
            self.run = None  # type: ignore[assignment]
            if self._links:
                self.hub.loop._callbacks.append((self._notify_links, ()))

    def _finish(
        self, value: Any, exc_info: tuple[Any, Any, Any] | None, report: bool = True
    ) -> None:
        """Mark the task finished with ``value`` or ``exc_info`` (see the
        success path inline in ``_execute``)."""
        self._state = _DONE
        self._worker = None
        self._value = value
        self._exc_info = exc_info
        # Release what the work referenced (arguments can be large).
        self.args = ()
        self._kwargs = None
        self.run = None  # type: ignore[assignment]
        if exc_info is not None and report:
            self.hub.handle_error(self, *exc_info)
        if self._links:
            self.hub.loop._callbacks.append((self._notify_links, ()))

    def _notify_links(self) -> None:
        links = self._links
        while links:
            callback = links.pop(0)
            try:
                callback(self)
            except Exception:
                self.hub.handle_error(callback, *sys.exc_info())

    # -- state ----------------------------------------------------------------
    @property
    def name(self) -> str:
        name = getattr(self, "_name", None)
        if name is None:
            # Numbered when first named, as gevent's ``minimal_ident``: a
            # number taken at spawn would cost every task a call and an int.
            name = self._name = f"Greenlet-{next(_counter)}"
        return name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)

    @property
    def started(self) -> bool:
        return self._state != _NEW

    @property
    def value(self) -> Any:
        """What the task returned (the ``GreenletExit`` that killed it); None
        until it finishes, or when it raised."""
        return getattr(self, "_value", None)

    @value.setter
    def value(self, value: Any) -> None:
        self._value = value

    @property
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the call, until the task finishes.

        An empty call keeps no dict (``spawn`` would otherwise keep one per
        task, which the garbage collector counts): a new empty one is returned.
        """
        kwargs = self._kwargs
        return {} if kwargs is None else kwargs

    @kwargs.setter
    def kwargs(self, kwargs: dict[str, Any]) -> None:
        self._kwargs = kwargs or None

    @property
    def dead(self) -> bool:
        return self._state == _DONE

    def ready(self) -> bool:
        """True once the task has finished (returned, raised or was killed)."""
        return self._state == _DONE

    def successful(self) -> bool:
        return self._state == _DONE and getattr(self, "_exc_info", None) is None

    @property
    def exception(self) -> BaseException | None:
        """The exception the task raised, or None (also None while running)."""
        exc_info = getattr(self, "_exc_info", None)
        return exc_info[1] if exc_info is not None else None

    @property
    def exc_info(self) -> tuple[Any, Any, Any] | None:
        return getattr(self, "_exc_info", None)

    def __bool__(self) -> bool:
        """True while started and not yet finished, as gevent's Greenlet."""
        return self._state in (_SCHEDULED, _RUNNING)

    def __repr__(self) -> str:
        run = self.run
        func = "" if run is None else " " + (getattr(run, "__qualname__", None) or repr(run))
        return f"<Greenlet {self.name!r} {_STATE_NAMES[self._state]}{func}>"

    # -- throwing and killing -------------------------------------------------
    def throw(self, exception: BaseException) -> bool:
        """From the hub: raise ``exception`` inside the task if it is running and blocked.

        Returns False (and does nothing) when the task is not running any more,
        so a late Timeout cannot hit whatever its worker runs next.
        """
        if self._state != _RUNNING:
            return False
        worker = self._worker
        if worker is None or worker.task is not self:
            return False
        worker.throw(exception)
        return True

    def kill(
        self, exception: Any = GreenletExit, block: bool = True, timeout: float | None = None
    ) -> None:
        """Raise ``exception`` in the task; by default wait until it has finished."""
        if self._state == _DONE:
            return
        exc = exception() if isinstance(exception, type) else exception
        if self._state in (_NEW, _SCHEDULED):
            # Never started: it finishes now without running.
            start_timer = getattr(self, "_start_timer", None)
            if start_timer is not None:
                start_timer.cancel()
                self._start_timer = None
            if isinstance(exc, GreenletExit):
                self._finish(exc, None)
            else:
                self._finish(None, (type(exc), exc, None), report=False)
            return
        if getcurrent_task() is self:
            raise exc
        self.hub.loop.run_callback(self.throw, exc)
        if block:
            self.join(timeout)

    # -- waiting for the result ----------------------------------------------
    def join(self, timeout: float | Timeout | None = None) -> None:
        """Wait until the task finishes, at most ``timeout`` seconds.

        ``timeout`` may be a ``Timeout``, as in gevent: its expiry ends the wait
        quietly (one carrying its own exception raises that).
        """
        if self._state == _DONE:
            return
        if isinstance(timeout, Timeout):
            wait_until_timeout(timeout, self.join)
            return
        waiter = Waiter(self.hub)
        self.rawlink(waiter.switch)
        timer = (
            self.hub.loop.call_later(timeout, waiter.switch, None) if timeout is not None else None
        )
        try:
            waiter.get()
        finally:
            self.unlink(waiter.switch)
            if timer is not None:
                timer.cancel()

    def get(self, block: bool = True, timeout: float | Timeout | None = None) -> Any:
        """The task's return value, or raise what it raised.

        Raises ``greenpatch.Timeout`` when it has not finished in time; given a
        ``Timeout`` object as ``timeout``, raises that object (gevent does too).
        """
        if self._state != _DONE:
            if not block:
                raise Timeout(0)
            if isinstance(timeout, Timeout):
                # Its expiry is raised out of join(), as gevent raises it.
                Timeout.start_new(timeout)
                try:
                    self.join()
                finally:
                    timeout.cancel()
            else:
                self.join(timeout)
                if self._state != _DONE:
                    raise Timeout(timeout)
        exc_info = getattr(self, "_exc_info", None)
        if exc_info is not None:
            _, value, tb = exc_info
            raise value.with_traceback(tb)
        return self._value

    # -- links ----------------------------------------------------------------
    def rawlink(self, callback: Callable[[Greenlet], Any]) -> None:
        """Call ``callback(self)`` in the hub when the task finishes (once)."""
        if not callable(callback):
            raise TypeError(f"expected a callable, got {callback!r}")
        if self._links is None:
            self._links = []
        self._links.append(callback)
        if self._state == _DONE and len(self._links) == 1:
            self.hub.loop._callbacks.append((self._notify_links, ()))

    def link(self, callback: Callable[[Greenlet], Any]) -> None:
        """Call ``callback(self)`` in a new greenlet when the task finishes (once)."""
        self.rawlink(_SpawnedLink(callback))

    def link_value(self, callback: Callable[[Greenlet], Any]) -> None:
        """Like ``link`` but only when the task succeeded."""
        self.rawlink(_SpawnedLink(callback, successful=True))

    def link_exception(self, callback: Callable[[Greenlet], Any]) -> None:
        """Like ``link`` but only when the task raised."""
        self.rawlink(_SpawnedLink(callback, successful=False))

    def unlink(self, callback: Callable[[Greenlet], Any]) -> None:
        links = self._links
        if links:
            for index, link in enumerate(links):
                if link == callback:
                    del links[index]
                    return


class _SpawnedLink:
    """A link that runs its callback in a fresh greenlet (so it may block)."""

    __slots__ = ("callback", "successful")

    def __init__(self, callback: Callable[[Greenlet], Any], successful: bool | None = None) -> None:
        if not callable(callback):
            raise TypeError(f"expected a callable, got {callback!r}")
        self.callback = callback
        self.successful = successful

    def __call__(self, source: Greenlet) -> None:
        if self.successful is None or source.successful() == self.successful:
            Greenlet.spawn(self.callback, source)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _SpawnedLink):
            return self.callback == other.callback and self.successful == other.successful
        return self.callback == other

    def __hash__(self) -> int:
        return hash(self.callback)


def _prepare(
    glet: Greenlet, run: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """What ``Greenlet.__init__`` sets, bar the name (``spawn`` repeats it inline)."""
    hub = hub_of_this_thread()  # get_hub() without its Python call, when the hub exists
    glet.hub = hub if hub is not None else get_hub()
    glet.run = run
    glet.args = args
    glet._kwargs = kwargs or None
    glet._state = _NEW
    glet._links = None


#: ``object.__new__``: ``spawn`` makes its Greenlet without the type call, which
#: would copy the arguments into a new tuple and dict for ``__init__``.
_new_object = object.__new__


def spawn(run: Callable[..., Any], *args: Any, **kwargs: Any) -> Greenlet:
    """Start ``run(*args, **kwargs)`` in a new greenlet and return it."""
    # _prepare and Greenlet.start, inline: the hottest way to make a task.
    glet = _new_object(Greenlet)
    hub = hub_of_this_thread()
    if hub is None:
        hub = get_hub()
    glet.hub = hub
    glet.run = run
    glet.args = args
    glet._kwargs = kwargs or None
    glet._state = _SCHEDULED
    glet._links = None
    # _queue_start, inline.
    try:
        hub.task_lane.append(glet)
    except AttributeError:  # the hub's first task
        _task_lane(hub).append(glet)
    hub._callbacks.append(hub.task_lane_entry)
    return glet


def spawn_later(seconds: float, run: Callable[..., Any], *args: Any, **kwargs: Any) -> Greenlet:
    glet = Greenlet(run, *args, **kwargs)
    glet.start_later(seconds)
    return glet
