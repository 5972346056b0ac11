"""Cooperative ``zmq.proxy``, ``proxy_steerable``, ``device`` and ``monitored_queue``.

The problem
-----------
pyzmq's devices are one C call each: ``zmq_proxy`` (and the Cython
``monitored_queue``) loop inside libzmq until the context ends.  Under
``patch_all()`` a ``zmq.devices.ThreadDevice`` runs that loop in a
``threading.Thread`` -- a greenlet of the caller's own OS thread -- so the loop
holds the thread, and the clients it should serve never run.

What this does instead
----------------------
The same loop, in Python, over the cooperative ``zmq_poll`` of
``greenpatch.plugins._zmq`` and ``NOBLOCK`` sends and receives, so every wait
goes through the hub.  It keeps libzmq 4.3.5's rules (pyzmq 27 bundles it):

* a message moves whole: every frame of a multipart message, with ``SNDMORE``
  on all but the last, and none of it is taken from its source until the
  destination reports ``POLLOUT`` (a full destination leaves the message queued
  where it is, instead of holding it half-sent); then up to ``_BURST`` messages
  go in one turn before the other direction gets its turn;
* a frontend that is also the backend (``ThreadDevice(QUEUE, REP, -1)``, an
  echo) forwards without the ``POLLOUT`` test, which a REP socket fails until it
  has received;
* ``capture`` gets a copy of every frame, sent before the frame itself;
* the control socket of ``proxy_steerable`` takes ``PAUSE``, ``RESUME``,
  ``TERMINATE`` (the proxy returns 0) and ``STATISTICS`` (eight native
  ``uint64`` frames: frames and bytes in and out of the frontend, then of the
  backend, counted per frame as libzmq 4.3.5 does); a REP control socket gets
  an empty reply to every other command, unknown ones included, so its REQ peer
  can go on;
* ``proxy`` never returns: it raises what the failing call raises --
  ``ContextTerminated`` once the context is terminated, ``ZMQError(ENOTSOCK)``
  once one of its sockets is closed (``zmq.devices`` silences both).

``monitored_queue`` is pyzmq's own device, not libzmq's: each message goes to
the other socket and, behind a prefix frame (``in_prefix`` or ``out_prefix``),
to the monitor socket; with ROUTER on both sides the first two frames (the
routing identities) are swapped on the way.

The functions work on pyzmq's plain sockets too (the cooperative poll and the
``NOBLOCK`` calls do), which matters when ``zmq.devices`` made its context
before ``patch_all()``.  Called in the hub greenlet itself, where nothing can
wait, the poll blocks in libzmq as pyzmq's devices do.

Rejected: running pyzmq's C devices on a thread of the hub's pool -- a real
thread then uses the sockets while their greenlets may too (libzmq sockets are
not thread-safe), and a device that never returns holds a pool thread for the
process's life.
"""

from __future__ import annotations

import struct
from typing import Any

import zmq

from greenpatch.plugins._zmq import _get_option, _hub_to_wait_in, _pass_on, _poll

__all__ = ["device", "monitored_queue", "proxy", "proxy_steerable"]

_POLLIN: int = zmq.POLLIN
_POLLOUT: int = zmq.POLLOUT
_NOBLOCK: int = zmq.NOBLOCK
_SNDMORE: int = zmq.SNDMORE
#: Messages one direction forwards before the loop looks at the other (libzmq: 1000);
#: the loop yields to the hub after every turn that moved something.
_BURST = 1000


def _events(sock: Any) -> int:
    """``ZMQ_EVENTS`` of ``sock``, handing the answer to its other waiters (reading drains
    its ``ZMQ_FD``)."""
    events: int = _get_option(sock, zmq.EVENTS)
    _pass_on(sock, events)
    return events


def _send(sock: Any, frame: Any, flags: int) -> None:
    """Send one frame, waiting on the hub while ``sock`` refuses it."""
    while True:
        try:
            sock.send(frame, flags | _NOBLOCK, copy=False)
            return
        except zmq.Again:
            _poll([(sock, _POLLOUT)], -1)


def _send_message(sock: Any, frames: list[Any]) -> None:
    last = len(frames) - 1
    for index, frame in enumerate(frames):
        _send(sock, frame, _SNDMORE if index < last else 0)


def _recv_message(sock: Any) -> list[Any]:
    """Every frame of the message waiting on ``sock`` (frames of one message arrive together)."""
    frames = [sock.recv(_NOBLOCK, copy=False)]
    while frames[-1].more:
        frames.append(sock.recv(_NOBLOCK, copy=False))
    return frames


class _Hop:
    """One direction of a device: messages from ``source`` to ``dest``, copies to ``capture``.

    ``stats_in``/``stats_out`` are the ``[frames in, bytes in, frames out, bytes
    out]`` of the two sockets (shared by both directions); ``blocked`` says the
    last turn found a message but a full ``dest``, so the loop waits for its
    ``POLLOUT`` rather than the source's ``POLLIN``.
    """

    __slots__ = ("blocked", "capture", "dest", "prefix", "source", "stats_in", "stats_out", "swap")

    def __init__(
        self,
        source: Any,
        dest: Any,
        capture: Any,
        stats: tuple[list[int], list[int]],
        prefix: bytes | None = None,
        swap: bool = False,
    ) -> None:
        self.source = source
        self.dest = dest
        self.capture = capture
        self.stats_in, self.stats_out = stats
        self.prefix = prefix
        self.swap = swap
        self.blocked = False

    def forward(self) -> int:
        """Move up to ``_BURST`` waiting messages; how many moved."""
        moved = 0
        same = self.source is self.dest
        while moved < _BURST:
            if not _events(self.source) & _POLLIN:
                self.blocked = False
                break
            if not same and not _events(self.dest) & _POLLOUT:
                self.blocked = True
                break
            self.blocked = False
            self._move_one()
            moved += 1
        return moved

    def _move_one(self) -> None:
        frames = _recv_message(self.source)
        size = sum(len(frame) for frame in frames)
        self.stats_in[0] += len(frames)
        self.stats_in[1] += size
        if self.swap and len(frames) >= 2:
            frames[0], frames[1] = frames[1], frames[0]
        if self.capture is not None:
            prefix = [] if self.prefix is None else [self.prefix]
            _send_message(self.capture, prefix + frames)
        _send_message(self.dest, frames)
        self.stats_out[2] += len(frames)
        self.stats_out[3] += size

    def wanted(self) -> list[tuple[Any, int]]:
        """What this direction waits for while it has nothing to move."""
        if self.blocked:
            return [(self.dest, _POLLOUT)]
        return [(self.source, _POLLIN)]


def _poll_items(wanted: list[tuple[Any, int]]) -> list[tuple[Any, int]]:
    """Merge the flags of a socket listed twice (a frontend that is the backend)."""
    merged: list[tuple[Any, int]] = []
    for sock, flags in wanted:
        for index, (seen, seen_flags) in enumerate(merged):
            if seen is sock:
                merged[index] = (seen, seen_flags | flags)
                break
        else:
            merged.append((sock, flags))
    return merged


class _Control:
    """The control socket of ``proxy_steerable`` and what its commands do."""

    def __init__(self, sock: Any, stats: tuple[list[int], list[int]]) -> None:
        self.sock = sock
        self.stats = stats
        self.paused = False
        self.is_rep = sock.type == zmq.REP

    def handle(self) -> bool:
        """Act on the commands waiting; False once one was ``TERMINATE``."""
        while _events(self.sock) & _POLLIN:
            command = bytes(_recv_message(self.sock)[0])
            if command == b"STATISTICS":
                numbers = [*self.stats[0], *self.stats[1]]
                _send_message(self.sock, [struct.pack("=Q", number) for number in numbers])
                continue
            if command == b"PAUSE":
                self.paused = True
            elif command == b"RESUME":
                self.paused = False
            if self.is_rep:  # its REQ peer waits for an answer to every command
                _send_message(self.sock, [b""])
            if command == b"TERMINATE":
                return False
        return True


def _run(hops: list[_Hop], control: _Control | None = None) -> None:
    """The device loop: forward what waits, else wait for any of it; returns on TERMINATE."""
    while True:
        moved = 0
        if control is None or not control.paused:
            for hop in hops:
                moved += hop.forward()
        if control is not None and not control.handle():
            return
        if moved:
            # Busy: let the rest of the process run before the next turn.
            hub = _hub_to_wait_in()
            if hub is not None:
                hub.sleep(0)
            continue
        wanted: list[tuple[Any, int]] = []
        if control is None or not control.paused:
            for hop in hops:
                wanted.extend(hop.wanted())
        if control is not None:
            wanted.append((control.sock, _POLLIN))
        _poll(_poll_items(wanted), -1)


def _stats() -> tuple[list[int], list[int]]:
    return [0, 0, 0, 0], [0, 0, 0, 0]


def _hops(
    frontend: Any, backend: Any, capture: Any, stats: tuple[list[int], list[int]]
) -> list[_Hop]:
    front, back = stats
    if frontend is backend:
        return [_Hop(frontend, frontend, capture, (front, front))]
    return [
        _Hop(frontend, backend, capture, (front, back)),
        _Hop(backend, frontend, capture, (back, front)),
    ]


def proxy(frontend: Any, backend: Any, capture: Any = None) -> int:
    """``zmq.proxy``, waiting on the hub: forward between ``frontend`` and ``backend``
    (and copy to ``capture``) until the context ends or a socket is closed, which
    raises as pyzmq's does.  Typed ``int`` as pyzmq's, and like it never returns."""
    _run(_hops(frontend, backend, capture, _stats()))  # only a control socket ends the loop
    return 0


def proxy_steerable(frontend: Any, backend: Any, capture: Any = None, control: Any = None) -> int:
    """``zmq.proxy_steerable``, waiting on the hub: ``proxy`` with a ``control`` socket
    taking PAUSE, RESUME, TERMINATE (then it returns 0) and STATISTICS."""
    stats = _stats()
    hops = _hops(frontend, backend, capture, stats)
    if control is None:
        _run(hops)
    else:
        _run(hops, _Control(control, stats))
    return 0


def device(device_type: Any, frontend: Any, backend: Any) -> int:
    """``zmq.device``: pyzmq's deprecated alias of ``proxy`` (``device_type`` is ignored)."""
    return proxy(frontend, backend)


def monitored_queue(
    in_socket: Any,
    out_socket: Any,
    mon_socket: Any,
    in_prefix: bytes = b"in",
    out_prefix: bytes = b"out",
) -> None:
    """``zmq.devices.monitored_queue``, waiting on the hub: a queue between ``in_socket``
    and ``out_socket`` that also sends every message, behind its side's prefix, to
    ``mon_socket``; ROUTER on both sides swaps the routing identities."""
    swap = in_socket.type == zmq.ROUTER and out_socket.type == zmq.ROUTER
    front, back = _stats()
    _run(
        [
            _Hop(in_socket, out_socket, mon_socket, (front, back), in_prefix, swap),
            _Hop(out_socket, in_socket, mon_socket, (back, front), out_prefix, swap),
        ]
    )
