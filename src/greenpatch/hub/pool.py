"""``Group`` keeps track of greenlets; ``Pool`` is a group that bounds how many run at once.

A member leaves its group when it finishes (the group ``rawlink``s each one), so
``len(group)`` is the number of members still scheduled or running, and a
``Pool`` never has more than ``size`` of them.  A spawn into a full pool waits,
in line, for a member to finish.

Waiting uses the same one-item resume tokens as ``queue.py`` (and its
``_wait_turn``): a finished member wakes the first blocked spawner, which
re-checks the bound and adds its greenlet itself; joiners are woken together and
re-check whatever they wait for.  ``hub/locks.py`` would offer a semaphore, but
the bound here has to count members, not acquisitions, so it is kept apart.

Mapping (``imap`` and friends) runs a *feeder* greenlet outside the pool: it
pulls one input item at a time, waits for a free slot, and spawns the call into
the pool.  Pulling in a greenlet rather than in the consumer keeps the pool busy
while the consumer is slow, and lets the input iterable itself block (a
generator reading a socket, say), which a hub callback must never do.  Results
travel back through a ``Queue``; ``maxsize`` bounds how many results may be
spawned and not yet consumed, so an ordered ``imap`` waiting for a slow first
item does not buffer the rest of the input.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from time import monotonic
from typing import Any, Callable

from greenpatch.hub.greenlet import Greenlet
from greenpatch.hub.hub import GreenletExit, get_hub, getcurrent_task, resume
from greenpatch.hub.queue import Full, Queue, _check_timeout, _wait_turn

__all__ = ["Group", "Pool", "PoolFull"]


class PoolFull(Full):
    """A non-blocking spawn or add found the pool full."""


class Group:
    """A set of greenlets: spawn into it, wait for or kill all of them, map over inputs.

    Greenlets leave the group when they finish.
    """

    #: The class ``spawn`` instantiates.
    greenlet_class: type[Greenlet] = Greenlet

    def __init__(self, *greenlets: Greenlet) -> None:
        self.greenlets: set[Greenlet] = set()
        #: Members killed and not finished yet.
        self.dying: set[Greenlet] = set()
        # Tokens of greenlets blocked in join/kill (all woken together) and of
        # spawners waiting for room in a Pool (woken one per free slot).
        self._joiners: deque[list[Any]] = deque()
        self._spawners: deque[list[Any]] = deque()
        self._callbacks: Any = None  # the hub's callback queue, set by whoever blocks
        for glet in greenlets:
            self.add(glet)

    # -- membership -----------------------------------------------------------
    def __len__(self) -> int:
        return len(self.greenlets)

    def __contains__(self, glet: object) -> bool:
        return glet in self.greenlets

    def __iter__(self) -> Iterator[Greenlet]:
        """Iterate over a snapshot of the members."""
        return iter(list(self.greenlets))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} members={len(self.greenlets)}>"

    def add(self, glet: Greenlet) -> None:
        """Track ``glet`` until it finishes (at once if it has already finished)."""
        if glet not in self.greenlets:
            self.greenlets.add(glet)
            glet.rawlink(self._member_finished)

    def discard(self, glet: Greenlet) -> None:
        """Stop tracking ``glet`` (it keeps running)."""
        if glet not in self.greenlets:
            return
        self.greenlets.remove(glet)
        glet.unlink(self._member_finished)
        was_dying = glet in self.dying
        self.dying.discard(glet)
        callbacks = self._callbacks
        if callbacks is None:
            return  # nobody has ever waited on this group
        if self._spawners and not self.full():
            callbacks.append((resume, self._spawners.popleft()))
        # Joiners wait for the group to empty, for a dying member to go, or (with
        # raise_error) for a failure; other departures need not wake them.
        if self._joiners and (not self.greenlets or was_dying or not glet.successful()):
            joiners = self._joiners
            while joiners:
                callbacks.append((resume, joiners.popleft()))

    def _member_finished(self, glet: Greenlet) -> None:
        self.discard(glet)

    # -- spawning -------------------------------------------------------------
    def start(self, glet: Greenlet) -> None:
        """Add ``glet`` (waiting for room in a pool) and start it."""
        self.add(glet)
        glet.start()

    def spawn(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Greenlet:
        """Start ``func(*args, **kwargs)`` in a new member greenlet and return it."""
        glet = self.greenlet_class(func, *args, **kwargs)
        self.start(glet)
        return glet

    def full(self) -> bool:
        """Whether a spawn would wait; never for a plain group."""
        return False

    def wait_available(self, timeout: float | None = None) -> int | None:
        """Wait until a spawn would not block; a plain group never blocks (None)."""
        return None

    # -- waiting and killing --------------------------------------------------
    def _wait(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        if ready():
            return True
        _check_timeout(timeout)
        hub = get_hub()
        self._callbacks = hub._callbacks
        return _wait_turn(hub, self._joiners, ready, timeout, None, wake_all=True)

    def join(self, timeout: float | None = None, raise_error: bool = False) -> bool:
        """Wait until the group is empty; False on timeout.

        With ``raise_error``, stop waiting as soon as a current member fails and
        re-raise its exception.
        """
        members = list(self.greenlets) if raise_error else []

        def failed() -> Greenlet | None:
            for glet in members:
                if glet.ready() and not glet.successful():
                    return glet
            return None

        def empty_or_failed() -> bool:
            return not self.greenlets or failed() is not None

        finished = self._wait(empty_or_failed, timeout)
        bad = failed()
        if bad is not None:
            bad.get()  # re-raises with the original traceback
        return finished

    def kill(
        self, exception: Any = GreenletExit, block: bool = True, timeout: float | None = None
    ) -> None:
        """Kill every member; with ``block``, wait (at most ``timeout`` s) until they are gone.

        Members spawned meanwhile are killed too.  The calling greenlet, if it is a
        member, is spared: it cannot wait for itself.
        """
        spared = {getcurrent_task()}
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            targets = [g for g in self.greenlets if g not in spared and g not in self.dying]
            for glet in targets:
                self.dying.add(glet)
                glet.kill(exception, block=False)
            if not block or (not targets and self.dying <= spared):
                return
            remaining = None if deadline is None else deadline - monotonic()
            if remaining is not None and remaining <= 0:
                return
            if not self._wait(lambda: self.dying <= spared, remaining):
                return

    def killone(
        self,
        glet: Greenlet,
        exception: Any = GreenletExit,
        block: bool = True,
        timeout: float | None = None,
    ) -> None:
        """Kill one member; with ``block``, wait (at most ``timeout`` s) until it has finished."""
        if glet in self.greenlets and glet not in self.dying:
            self.dying.add(glet)
            glet.kill(exception, block=False)
        if block:
            glet.join(timeout)

    # -- calling and mapping --------------------------------------------------
    def apply(
        self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: dict[str, Any] | None = None
    ) -> Any:
        """Run ``func(*args, **kwds)`` in the group and return its result.

        Called from a member, it runs in place: waiting for room in a full pool
        that the caller itself occupies would never end.
        """
        if getcurrent_task() in self.greenlets:
            return func(*args, **(kwds or {}))
        return self.spawn(func, *args, **(kwds or {})).get()

    def apply_async(
        self,
        func: Callable[..., Any],
        args: Iterable[Any] = (),
        kwds: dict[str, Any] | None = None,
        callback: Callable[[Any], Any] | None = None,
    ) -> Greenlet:
        """Start ``func(*args, **kwds)`` and return its greenlet.

        ``callback(result)`` runs in a new greenlet if the call succeeds.  From a
        member of a full pool the call runs outside the pool, for the reason
        given in ``apply``.
        """
        if self.full() and getcurrent_task() in self.greenlets:
            glet = self.greenlet_class.spawn(func, *args, **(kwds or {}))
        else:
            glet = self.spawn(func, *args, **(kwds or {}))
        if callback is not None:
            glet.link_value(lambda source: callback(source.value))
        return glet

    def map(self, func: Callable[..., Any], iterable: Iterable[Any]) -> list[Any]:
        """``[func(x) for x in iterable]``, computed in the group; raises the first error."""
        return list(self.imap(func, iterable))

    def map_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        callback: Callable[[list[Any]], Any] | None = None,
    ) -> Greenlet:
        """Run ``map`` in a new greenlet (outside the group) and return that greenlet.

        Its value is the list of results; ``callback(results)`` runs in a new
        greenlet if the map succeeds.  Outside the group, as in gevent: a member
        slot held by the mapping greenlet itself could starve its own calls.
        """
        glet = self.greenlet_class.spawn(self.map, func, iterable)
        if callback is not None:
            glet.link_value(lambda source: callback(source.value))
        return glet

    def imap(
        self, func: Callable[..., Any], *iterables: Iterable[Any], maxsize: int | None = None
    ) -> MapIterator:
        """Lazily yield ``func(*args)`` for the zipped inputs, in input order.

        ``maxsize`` bounds results spawned and not yet consumed.
        """
        return MapIterator(self, func, iterables, maxsize, ordered=True)

    def imap_unordered(
        self, func: Callable[..., Any], *iterables: Iterable[Any], maxsize: int | None = None
    ) -> MapIterator:
        """Like ``imap`` but yields results in the order the calls finish."""
        return MapIterator(self, func, iterables, maxsize, ordered=False)


class Pool(Group):
    """A group of at most ``size`` running greenlets (None: unbounded).

    ``spawn`` and ``add`` wait while the pool is full.
    """

    def __init__(
        self, size: int | None = None, greenlet_class: type[Greenlet] | None = None
    ) -> None:
        if greenlet_class is not None:
            if not (isinstance(greenlet_class, type) and issubclass(greenlet_class, Greenlet)):
                raise TypeError(
                    f"greenlet_class must be a subclass of greenpatch.Greenlet, "
                    f"not {greenlet_class!r}"
                )
            self.greenlet_class = greenlet_class
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"Pool size must be a positive integer or None, not {size!r}")
        self.size = size
        super().__init__()

    def __repr__(self) -> str:
        return f"<Pool size={self.size} members={len(self.greenlets)}>"

    def full(self) -> bool:
        return self.size is not None and len(self.greenlets) >= self.size

    def free_count(self) -> int:
        """How many more greenlets could start now (1 for an unbounded pool)."""
        if self.size is None:
            return 1
        return max(0, self.size - len(self.greenlets))

    def _has_room(self) -> bool:
        return not self.full()

    def _wait_for_room(self, timeout: float | None) -> bool:
        _check_timeout(timeout)
        hub = get_hub()
        self._callbacks = hub._callbacks
        return _wait_turn(hub, self._spawners, self._has_room, timeout, None)

    def wait_available(self, timeout: float | None = None) -> int:
        """Wait until a spawn would not block; return ``free_count()`` (0 on timeout)."""
        if self.full() and self._wait_for_room(timeout) and self._spawners:
            # We were woken for a slot we do not take: pass the turn on.
            self._callbacks.append((resume, self._spawners.popleft()))
        return self.free_count()

    def add(self, glet: Greenlet, blocking: bool = True, timeout: float | None = None) -> None:
        """Track ``glet``, waiting (at most ``timeout`` s) for room; ``PoolFull`` if none."""
        if glet in self.greenlets:
            return
        if self.full():
            if not blocking or timeout == 0 or not self._wait_for_room(timeout):
                raise PoolFull(f"{self!r} is full")
        super().add(glet)


class MapIterator(Iterator[Any]):
    """The iterator returned by ``imap`` and ``imap_unordered``.

    An error raised by the mapped function, or by the input, is raised to the
    consumer (at its position in the input for ``imap``) and ends the iteration;
    no further input is pulled.  ``close()`` stops pulling input early.
    """

    def __init__(
        self,
        group: Group,
        func: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        maxsize: int | None,
        ordered: bool,
    ) -> None:
        if not iterables:
            raise TypeError("imap needs at least one iterable")
        self._group = group
        self._func = func
        self._ordered = ordered
        # (index, finished greenlet), or (count, None) once the input is exhausted.
        self._results: Queue[tuple[int, Greenlet | None]] = Queue()
        # One token per spawned result not yet consumed; bounds the work ahead.
        self._slots: Queue[None] | None = Queue(maxsize) if maxsize else None
        self._indexes: dict[Greenlet, int] = {}
        self._finished: dict[int, Greenlet] = {}  # ordered: arrived ahead of their turn
        self._yielded = 0
        self._total: int | None = None  # known once the feeder reached the end
        self._input_error: BaseException | None = None
        self._closed = False
        self._feeder = Greenlet.spawn(self._feed, zip(*iterables))

    # -- the feeder greenlet --------------------------------------------------
    def _feed(self, inputs: Iterator[tuple[Any, ...]]) -> None:
        group = self._group
        slots = self._slots
        index = 0
        try:
            while True:
                if slots is not None:
                    slots.put(None)
                # Wait for room before pulling input, so a pool holds back the input.
                group.wait_available()
                try:
                    args = next(inputs)
                except StopIteration:
                    break
                glet = group.spawn(self._func, *args)
                self._indexes[glet] = index
                glet.rawlink(self._task_finished)
                index += 1
        except GreenletExit:
            return  # closed by the consumer
        except BaseException as exc:
            self._input_error = exc
        self._total = index
        self._results.put_nowait((index, None))

    def _task_finished(self, glet: Greenlet) -> None:
        self._results.put_nowait((self._indexes.pop(glet), glet))

    # -- the consumer side ----------------------------------------------------
    def __iter__(self) -> MapIterator:
        return self

    def _at_end(self) -> bool:
        return self._total is not None and self._yielded >= self._total

    def _next_finished(self) -> Greenlet:
        """The finished call whose result comes next; blocks until there is one."""
        results = self._results
        if self._ordered:
            finished = self._finished
            while self._yielded not in finished:
                if self._at_end():
                    raise StopIteration
                index, glet = results.get()
                if glet is not None:
                    finished[index] = glet
            return finished.pop(self._yielded)
        while True:
            if self._at_end():
                raise StopIteration
            glet = results.get()[1]
            if glet is not None:
                return glet

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        try:
            glet = self._next_finished()
        except StopIteration:
            self.close()
            error = self._input_error
            if error is not None:
                self._input_error = None
                raise error from None
            raise
        except BaseException:
            self.close()
            raise
        self._yielded += 1
        if self._slots is not None:
            self._slots.get_nowait()
        if not glet.successful():
            self.close()
            glet.get()  # re-raises the call's exception with its traceback
        return glet.value

    def close(self) -> None:
        """Stop pulling input and end the iteration; calls already running go on."""
        if not self._closed:
            self._closed = True
            self._feeder.kill(block=False)
