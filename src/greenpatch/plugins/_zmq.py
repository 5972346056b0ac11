"""Cooperative pyzmq: ``Context``, ``Socket``, ``Poller`` and ``select`` that wait on the hub.

The problem
-----------
pyzmq's ``Socket.send`` and ``recv`` block inside libzmq, in C, on descriptors
Python never sees: under ``patch_all()`` the first ``recv`` of a REP server in
one greenlet holds the hub's whole thread, and the REQ client in the next
greenlet -- the peer it waits for -- never runs.

What libzmq offers
------------------
Every libzmq socket has a descriptor, ``ZMQ_FD``, that signals "the socket's
``ZMQ_EVENTS`` may have changed", for reading and writing alike, by becoming
readable.  It is not a readiness flag: reading ``ZMQ_EVENTS`` (and any send or
recv) processes the socket's pending commands and *drains* it, so the
descriptor can be quiet while a message waits.  That is libzmq's
edge-triggered contract, and it dictates the order of every wait here:

1. try the call with ``NOBLOCK``;
2. on ``EAGAIN`` read ``ZMQ_EVENTS``: if the wanted event is set after all
   (it arrived meanwhile), try again;
3. only otherwise wait for ``ZMQ_FD`` to become readable -- the read in step 2
   drained it, so any later change makes it readable, and no switch happens
   between the read and the start of the wait.

Many greenlets, one descriptor
------------------------------
One socket may have several waiters at once: two receivers, a sender and a
receiver (DEALER), a ``Poller`` besides them.  All of them share one watcher on
``ZMQ_FD`` and one list (``_Waits``), because any of them, or any other greenlet
calling ``send``/``recv``/``getsockopt(EVENTS)``, can drain the descriptor and
thereby swallow the edge another waiter needed.  So whoever reads
``ZMQ_EVENTS`` -- the watcher's callback, a waiter that got ``EAGAIN``, and every
operation on a socket that has waiters -- hands the answer to ``_Waits.check``,
which wakes, for each event that is set, the first send or recv waiting for it
(it will consume it: one at a time, the next is woken by the re-check after that
one's operation) and every poller waiting for it (pollers consume nothing).  A
waiter that was woken but leaves without acting (killed, timed out at the same
moment) checks again on its way out, so the turn passes on and no wake-up is lost.

Timeouts, closing, termination
------------------------------
``NOBLOCK`` calls raise ``zmq.Again`` at once, as in pyzmq.  ``RCVTIMEO`` and
``SNDTIMEO`` (milliseconds, -1 forever) are read from the socket when a call
would block and bound the whole call (one deadline however often it wakes);
then it raises ``zmq.Again``, as libzmq's own blocking calls do.

``close()`` wakes every greenlet waiting on the socket before libzmq closes it:
each tries its call again and gets pyzmq's answer for a closed socket,
``ZMQError(ENOTSOCK)``.  ``Context.term()`` runs libzmq's ``zmq_ctx_term`` on a
thread of the hub's pool: it blocks until every socket of the context is
closed, and those sockets belong to greenlets of this very thread, which must
go on running to see ``ContextTerminated`` and close them (termination signals
every socket's ``ZMQ_FD``; reading ``ZMQ_EVENTS`` then fails with ``ETERM``, and
``check`` wakes all its waiters to get that error from their own calls).
``destroy()`` closes the sockets first, as pyzmq's does.  Where nothing could
run meanwhile (in the hub greenlet, from a ``__del__`` during garbage
collection) ``term()`` is pyzmq's own call.

Rejected, with reasons:

* pyzmq's ``zmq.green`` (an ``AsyncResult`` per direction, one waiter each,
  asserted): two greenlets receiving on one socket -- threads sharing a socket
  is wrong, but greenlets taking turns on one is common -- fail its assertion,
  and it keeps a 1 s safety timer per wait because it does not re-check after
  every operation; it also ignores ``RCVTIMEO``/``SNDTIMEO``.
* A greenlet per socket pumping ``ZMQ_FD`` into events: a greenlet's memory and a
  switch per edge, for what a watcher callback does in the hub.
* Waiting on ``ZMQ_FD`` through ``hub.io``'s ``IoWaitQueue``: it wakes by
  descriptor readiness, first in line, while here the wake-up depends on
  ``ZMQ_EVENTS`` and on direction, and must reach waiters of the other direction
  and pollers too.

Devices: ``zmq.proxy``, ``proxy_steerable``, ``device`` and
``zmq.devices.monitored_queue`` loop inside libzmq; their cooperative twins, in
Python over this module's poll, are in ``greenpatch.plugins._zmq_devices`` (a
file of their own: they need this module, and this one is long enough).  This
module hands them out lazily (``__getattr__`` below), so the registry finds
them here for ``zmq.proxy`` without an import cycle.

Limits: two
Python objects over one libzmq socket (a ``shadow`` of a socket in use) keep
separate lists of waiters, so one's operations can swallow the other's edge;
``POLLERR`` on a plain descriptor in a ``Poller`` is reported when the poll
wakes for something else or times out (as gevent's ``select`` does with its
``xlist``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from time import monotonic
from typing import Any, TypeVar

import zmq
from greenlet import getcurrent
from zmq.backend import zmq_poll as _zmq_poll
from zmq.sugar.context import Context as _PyzmqContext
from zmq.sugar.poll import Poller as _PyzmqPoller
from zmq.sugar.socket import Socket as _PyzmqSocket

from greenpatch.hub.hub import Hub, get_hub, hub_of_this_thread
from greenpatch.hub.threadpool import get_threadpool
from greenpatch.hub.watchers import READ, WRITE, IoWatcher

__target__ = "zmq"
__implements__ = ["Context", "Socket", "Poller", "select", "proxy", "proxy_steerable", "device"]
__all__ = ["Context", "Poller", "Socket", "select"]
#: Defined in ``_zmq_devices`` (which imports this module), handed out by ``__getattr__``.
_DEVICES = frozenset({"proxy", "proxy_steerable", "device", "monitored_queue"})

T = TypeVar("T")
# Both classes stay generic, as pyzmq's are: code written against pyzmq
# subscripts them (zmq.asyncio's Socket is ``zmq.Socket[Future]``).
_ReturnT_co = TypeVar("_ReturnT_co", covariant=True)
_SocketT_co = TypeVar("_SocketT_co", bound="Socket[Any]", covariant=True)

_POLLIN: int = zmq.POLLIN
_POLLOUT: int = zmq.POLLOUT
_NOBLOCK: int = zmq.NOBLOCK
_EAGAIN: int = zmq.EAGAIN
_EVENTS: int = zmq.EVENTS
#: pyzmq's own option getter, under every override (ours answers EVENTS with a check).
_get_option: Callable[[Any, int], Any] = _PyzmqSocket.get
#: Where a socket keeps its ``_Waits`` (in its ``__dict__``: pyzmq's ``__setattr__``
#: turns unknown names into socket options, and a plain pyzmq socket in our
#: ``Poller`` gets one too).
_WAITS = "_greenpatch_waits"
_TIMED_OUT: Any = object()


class _Wait:
    """One greenlet's wait, possibly listed with several sockets (a poller).

    ``glet`` is the greenlet while it waits, None once woken or ended (so a
    second wake-up, a timeout and a close racing in one loop iteration act
    once); ``resume`` the token of the queued resume a ``check`` gave it, which
    its owner clears if it leaves otherwise.
    """

    __slots__ = ("glet", "resume")

    def __init__(self) -> None:
        self.glet: Any = getcurrent()
        self.resume: list[Any] | None = None


def _time_out(wait: _Wait) -> None:
    """Timer callback (in the hub): end ``wait`` as timed out, if it is still on."""
    glet = wait.glet
    if glet is not None:
        wait.glet = None
        glet.switch(_TIMED_OUT)


def _block(hub: Hub, wait: _Wait, deadline: float | None) -> bool:
    """Switch to the hub until ``wait`` is woken; False when ``deadline`` passed first."""
    timer = None
    if deadline is not None:
        timer = hub.loop.call_later(max(deadline - monotonic(), 0.0), _time_out, wait)
    try:
        return hub.switch() is not _TIMED_OUT
    finally:
        if timer is not None:
            timer.cancel()


class _Waits:
    """The greenlets of one hub waiting on one zmq socket, and the watcher on its ``ZMQ_FD``.

    ``entries`` are ``(wait, events, takes)``: the POLLIN/POLLOUT bits it waits
    for, and whether it will consume them (a send or recv: woken one at a time)
    or only look (a poll: every one woken).  The watcher is active while the
    list is not empty; its callback gets the socket as argument (held by the
    loop only while active), so a socket and its ``_Waits`` make no cycle.
    """

    __slots__ = ("closed", "entries", "hub", "watcher")

    def __init__(self, hub: Hub, fd: int) -> None:
        self.hub = hub
        self.entries: list[tuple[_Wait, int, bool]] = []
        self.watcher = IoWatcher(hub.loop, fd, READ)
        self.closed = False

    def join(self, sock: Any, wait: _Wait, events: int, takes: bool) -> None:
        self.entries.append((wait, events, takes))
        if not self.watcher.active:
            self.watcher.start(self._fd_signalled, sock)

    def leave(self, wait: _Wait) -> None:
        """Take ``wait`` off the list (however its wait ended)."""
        self.entries = [entry for entry in self.entries if entry[0] is not wait]
        if not self.entries and not self.closed:
            self.watcher.stop()

    def _fd_signalled(self, sock: Any) -> None:
        """The watcher's callback: ``ZMQ_FD`` is readable, so ``ZMQ_EVENTS`` may have changed."""
        if self.watcher.error:  # the descriptor went away: let every waiter find out
            self.wake_all()
        else:
            self.check(sock)

    def check(self, sock: Any, events: int | None = None) -> None:
        """Wake the waiters whose events are set (``events``: ``ZMQ_EVENTS`` just read)."""
        if events is None:
            try:
                events = _get_option(sock, _EVENTS)
            except zmq.ZMQError:
                # ETERM (the context is terminating) or ENOTSOCK: every waiter's
                # own call will raise it now.
                self.wake_all()
                return
        taken = 0
        kept = []
        for entry in self.entries:
            wait, wanted, takes = entry
            if wait.glet is None:
                continue  # over already (timed out, woken elsewhere)
            ready = wanted & events
            if ready and not (takes and ready & taken):
                if takes:
                    taken |= ready
                self._wake(wait)
            else:
                kept.append(entry)
        self.entries = kept
        if not kept:
            self.watcher.stop()

    def _wake(self, wait: _Wait) -> None:
        token = wait.resume = [wait.glet]
        wait.glet = None
        self.hub.schedule_resume(token)

    def wake_all(self) -> None:
        entries, self.entries = self.entries, []
        for wait, _events, _takes in entries:
            if wait.glet is not None:
                self._wake(wait)
        if not self.closed:
            self.watcher.stop()

    def close(self) -> None:
        """Wake every waiter and release the watcher (in the hub's own thread)."""
        if self.closed:
            return
        if hub_of_this_thread() is not self.hub:
            if not self.hub.loop.closed:
                self.hub.loop.run_callback_threadsafe(self.close)
            return
        self.wake_all()
        self.closed = True
        self.watcher.close()


def _waits_for(sock: Any, hub: Hub) -> _Waits:
    """The socket's ``_Waits`` in ``hub``, made on first use (or when it moved threads)."""
    waits: _Waits | None = sock.__dict__.get(_WAITS)
    if waits is None or waits.hub is not hub or waits.closed:
        if waits is not None:
            waits.close()
        waits = sock.__dict__[_WAITS] = _Waits(hub, _get_option(sock, zmq.FD))
    return waits


def _pass_on(sock: Any, events: int | None = None) -> None:
    """After an operation on ``sock`` (which may have drained ``ZMQ_FD``): wake whoever
    can go on now.  Costs nothing while nobody waits on the socket."""
    waits: _Waits | None = sock.__dict__.get(_WAITS)
    if waits is not None and waits.entries and waits.hub is hub_of_this_thread():
        waits.check(sock, events)


def _hub_to_wait_in() -> Hub | None:
    """The hub a blocking call may wait through; None in the hub greenlet itself
    (a loop callback cannot wait: the call blocks there as pyzmq's would)."""
    hub = hub_of_this_thread() or get_hub()
    return None if getcurrent() is hub else hub


class Socket(_PyzmqSocket[_ReturnT_co]):
    """``zmq.Socket`` whose blocking calls wait on the hub (see the module docstring).

    Every blocking form cooperates: ``send``/``recv`` (``copy=False``,
    ``track=True`` included), ``recv_into``, and through them pyzmq's
    ``send_multipart``, ``send_string``, ``send_json``, ``send_pyobj``,
    ``send_serialized`` and their ``recv_`` twins; ``poll`` uses the cooperative
    ``Poller``.  ``Socket(other)`` and ``Socket.shadow(other)`` work for a plain
    pyzmq socket too.
    """

    _greenpatch_waits: _Waits | None = None
    _repr_cls = "greenpatch.zmq.Socket"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # pyzmq takes ``Socket(other_socket)`` as a shadow by testing against
        # ``zmq.Socket`` -- this class once patched, so a plain pyzmq socket
        # would be taken for a context.
        if args and isinstance(args[0], _PyzmqSocket) and not kwargs.get("shadow"):
            kwargs["shadow"] = args[0]
            args = (None, *args[1:])
        shadow = kwargs.get("shadow")
        super().__init__(*args, **kwargs)  # type: ignore[misc]  # pyzmq types self per overload
        if isinstance(shadow, _PyzmqSocket) and self.context is None:
            self.context = shadow.context

    def _cooperate(self, wanted: int, flags: int, call: Callable[[int], T], timeout_opt: int) -> T:
        """``call(flags | NOBLOCK)``, waiting on the hub for ``wanted`` while it would block."""
        if flags & _NOBLOCK:
            try:
                return call(flags)
            finally:
                _pass_on(self)
        hub = _hub_to_wait_in()
        if hub is None:
            return call(flags)
        flags |= _NOBLOCK
        deadline: float | None = None
        timeout: int | None = None
        ready_but_refused = 0
        while True:
            try:
                result = call(flags)
            except zmq.Again:
                pass
            except zmq.ZMQError:
                _pass_on(self)  # the call may have processed commands before failing
                raise
            else:
                _pass_on(self)
                return result
            waits = _waits_for(self, hub)
            try:
                events: int = _get_option(self, _EVENTS)
            except zmq.ZMQError:
                waits.wake_all()  # we drained the edge that told them: they find out too
                raise
            waits.check(self, events)  # the other direction may be ready
            if events & wanted:
                # It arrived between the call and the read: try again at once,
                # yielding if libzmq keeps refusing what it says is ready.
                ready_but_refused += 1
                if ready_but_refused > 1:
                    hub.sleep(0)
                continue
            ready_but_refused = 0
            if timeout is None:
                timeout = int(_get_option(self, timeout_opt))
                if timeout >= 0:
                    deadline = monotonic() + timeout / 1000.0
            if timeout == 0 or not self._wait(hub, waits, wanted, deadline):
                raise zmq.Again(_EAGAIN)

    def _wait(self, hub: Hub, waits: _Waits, wanted: int, deadline: float | None) -> bool:
        wait = _Wait()
        waits.join(self, wait, wanted, True)
        try:
            woken = _block(hub, wait, deadline)
        except BaseException:
            wait.glet = None
            if wait.resume is not None:
                # Chosen for an event it will not consume: the next one's turn.
                wait.resume.clear()
                _pass_on(self)
            else:
                waits.leave(wait)
            raise
        if wait.resume is None:  # timed out (or a stray resume): still listed
            wait.glet = None
            waits.leave(wait)
        return woken

    # -- the blocking calls --------------------------------------------------------
    def send(  # type: ignore[override]
        self, data: Any, flags: int = 0, copy: bool = True, track: bool = False, **kwargs: Any
    ) -> Any:
        """Send one frame, waiting cooperatively while the queue is full (see pyzmq)."""
        send = super().send
        return self._cooperate(
            _POLLOUT,
            flags,
            lambda flags: send(data, flags, copy=copy, track=track, **kwargs),
            zmq.SNDTIMEO,
        )

    def recv(self, flags: int = 0, copy: bool = True, track: bool = False) -> Any:
        """Receive one frame, waiting cooperatively until one arrives (see pyzmq)."""
        recv = super().recv
        return self._cooperate(
            _POLLIN, flags, lambda flags: recv(flags, copy=copy, track=track), zmq.RCVTIMEO
        )

    if hasattr(_PyzmqSocket, "recv_into"):  # pyzmq 26.4+

        def recv_into(self, buffer: Any, /, *, nbytes: int = 0, flags: int = 0) -> int:
            """Receive into ``buffer``, waiting cooperatively (see pyzmq)."""
            recv_into = super().recv_into
            return self._cooperate(
                _POLLIN,
                flags,
                lambda flags: recv_into(buffer, nbytes=nbytes, flags=flags),
                zmq.RCVTIMEO,
            )

    def get(self, option: int) -> Any:
        """pyzmq's ``get``; reading ``EVENTS`` drains ``ZMQ_FD``, so it wakes waiters too."""
        value = super().get(option)
        if option == _EVENTS:
            _pass_on(self, value)  # type: ignore[arg-type]
        return value

    getsockopt = get  # pyzmq's alias points at its own get

    def close(self, linger: int | None = None) -> None:
        """Close the socket; greenlets waiting on it get ``ZMQError(ENOTSOCK)``."""
        waits = self.__dict__.pop(_WAITS, None)
        if waits is not None:
            waits.close()
        super().close(linger)


class Context(_PyzmqContext[_SocketT_co]):
    """``zmq.Context`` whose ``socket()`` makes cooperative sockets and whose ``term()``
    lets the greenlets that own its sockets run (see the module docstring)."""

    _socket_class = Socket  # type: ignore[assignment]  # as pyzmq declares its own
    # Not pyzmq's: ``instance()`` must not hand back a plain Context made before patching.
    _instance: Any = None
    _instance_pid: int | None = None
    _repr_cls = "greenpatch.zmq.Context"
    _greenpatch_finalizing = False

    def term(self) -> None:
        """Terminate the context; waits cooperatively until its sockets are closed."""
        term = functools.partial(_PyzmqContext.term, self)
        hub = hub_of_this_thread()
        if self._greenpatch_finalizing or hub is None or getcurrent() is hub:
            term()
        else:
            get_threadpool().apply(term)

    def __del__(self) -> None:
        # Collected at an arbitrary point, maybe in the hub: no switching here.
        self.__dict__["_greenpatch_finalizing"] = True
        super().__del__()


def _fd_of(item: Any) -> int:
    return item if isinstance(item, int) else int(item.fileno())


def _wait_for_any(items: Sequence[tuple[Any, int]], hub: Hub, deadline: float | None) -> bool:
    """Wait until one of ``items`` (socket or descriptor, POLLIN|POLLOUT) may be ready."""
    wait = _Wait()
    joined: list[_Waits] = []
    watchers: list[IoWatcher] = []
    try:
        for item, flags in items:
            wanted = flags & (_POLLIN | _POLLOUT)
            if not wanted:
                continue  # POLLERR alone: see the module docstring
            if isinstance(item, _PyzmqSocket):
                waits = _waits_for(item, hub)
                waits.join(item, wait, wanted, False)
                joined.append(waits)
                continue
            events = (READ if wanted & _POLLIN else 0) | (WRITE if wanted & _POLLOUT else 0)
            watcher = IoWatcher(hub.loop, _fd_of(item), events)
            watchers.append(watcher)
            watcher.start(_fd_ready, wait)
        return _block(hub, wait, deadline)
    finally:
        wait.glet = None
        if wait.resume is not None:
            wait.resume.clear()
        for waits in joined:
            waits.leave(wait)
        for watcher in watchers:
            watcher.close()


def _fd_ready(wait: _Wait) -> None:
    """A plain descriptor's watcher callback (in the hub)."""
    glet = wait.glet
    if glet is not None:
        wait.glet = None
        glet.switch()


def _poll(items: Sequence[tuple[Any, int]], timeout_ms: int) -> list[tuple[Any, int]]:
    """``zmq_poll`` of ``items`` (negative timeout: forever), waiting on the hub."""
    hub = _hub_to_wait_in()
    if timeout_ms == 0 or hub is None or not items:
        # Nothing to wait for (pyzmq answers an empty poll at once), or no way to wait.
        found: list[tuple[Any, int]] = _zmq_poll(items, timeout_ms)
        _pass_on_polled(items)
        return found
    deadline = None if timeout_ms < 0 else monotonic() + timeout_ms / 1000.0
    timed_out = False
    while True:
        found = _zmq_poll(items, 0)
        _pass_on_polled(items)
        if found or timed_out:  # after a timeout: one last look, as an expiring poll has
            return found
        timed_out = not _wait_for_any(items, hub, deadline)


def _pass_on_polled(items: Sequence[tuple[Any, int]]) -> None:
    # zmq_poll read ZMQ_EVENTS of every socket: the edge a send or recv waited for may be gone.
    for item, _flags in items:
        if isinstance(item, _PyzmqSocket):
            _pass_on(item)


class Poller(_PyzmqPoller):
    """``zmq.Poller`` whose ``poll(timeout)`` waits on the hub (zmq sockets and descriptors)."""

    def poll(self, timeout: int | None = None) -> list[tuple[Any, int]]:
        """Poll the registered sockets and descriptors; ``timeout`` in ms, None or -1 forever."""
        if timeout is None or timeout < 0:
            timeout = -1
        return _poll(list(self.sockets), int(timeout))


def select(
    rlist: list[Any], wlist: list[Any], xlist: list[Any], timeout: float | None = None
) -> tuple[list[Any], list[Any], list[Any]]:
    """``zmq.select``, waiting on the hub: ``timeout`` in seconds, None forever."""
    timeout_ms = -1 if timeout is None or timeout < 0 else int(timeout * 1000.0)
    items = []
    for item in set(rlist + wlist + xlist):
        flags = (
            (_POLLIN if item in rlist else 0)
            | (_POLLOUT if item in wlist else 0)
            | (zmq.POLLERR if item in xlist else 0)
        )
        items.append((item, flags))
    found = _poll(items, timeout_ms)
    ready_r, ready_w, ready_x = [], [], []
    for item, flags in found:
        if flags & _POLLIN:
            ready_r.append(item)
        if flags & _POLLOUT:
            ready_w.append(item)
        if flags & zmq.POLLERR:
            ready_x.append(item)
    return ready_r, ready_w, ready_x


Socket._poller_class = Poller


def __getattr__(name: str) -> Any:
    """The device functions, from their own module, on first use (see the docstring)."""
    if name in _DEVICES:
        from greenpatch.plugins import _zmq_devices

        return getattr(_zmq_devices, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
