"""Synchronisation benchmarks: greenpatch against gevent, eventlet, asyncio and uvloop.

    python benchmarks/bench_sync.py [--runs 3] [--only event_pingpong ...]

Workloads (targets are ratios to gevent's default loop, measured in the same run):

* event_pingpong: 100,000 Event set/wait round trips between two greenlets  (>= 1.0x)
* queue_unbounded: 100,000 items put by a producer, got by a consumer        (>= 1.0x)
* queue_maxsize1: the same through a Queue(maxsize=1)                         (>= 1.0x)

Each block also prints greenpatch's ratio to uvloop.  Each implementation runs
in its own subprocess (see _harness.py); a peer that is not installed is skipped.

Where the peers' equivalents are not exact:

* eventlet's ``Event`` is one-shot: ``send`` sets it (and raises if it is set
  already), ``reset`` clears it.  The ping-pong never sets an event that is set,
  so ``send``/``wait``/``reset`` play ``set``/``wait``/``clear`` (aliases, no
  wrapper call).  Its ``Queue()`` is unbounded as gevent's is (``Queue(0)``
  would be a channel).
* asyncio and uvloop run the same coroutines: ``asyncio.Event`` and
  ``asyncio.Queue``, whose ``wait``/``put``/``get`` are awaited.  An awaited
  ``put`` on an unbounded queue never suspends, as gevent's never blocks.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import main, timed, timed_async

ROUND_TRIPS = 100_000
ITEMS = 100_000


# -- greenlet libraries ------------------------------------------------------
def _pingpong(event_cls: Any, spawn: Any, joinall: Any) -> float:
    ping, pong = event_cls(), event_cls()

    def player(mine: Any, other: Any, serve: bool) -> None:
        for _ in range(ROUND_TRIPS):
            if serve:
                other.set()
            mine.wait()
            mine.clear()
            if not serve:
                other.set()

    return timed(
        lambda: joinall([spawn(player, ping, pong, True), spawn(player, pong, ping, False)])
    )


def _queue(queue_cls: Any, spawn: Any, joinall: Any, maxsize: int | None) -> float:
    queue = queue_cls(maxsize) if maxsize else queue_cls()

    def producer() -> None:
        put = queue.put
        for i in range(ITEMS):
            put(i)

    def consumer() -> None:
        get = queue.get
        for _ in range(ITEMS):
            get()

    return timed(lambda: joinall([spawn(producer), spawn(consumer)]))


def _greenpatch() -> tuple[Any, Any, Any, Any]:
    import greenpatch
    from greenpatch.hub.event import Event
    from greenpatch.hub.queue import Queue

    greenpatch.spawn(lambda: None).join()
    return Event, Queue, greenpatch.spawn, greenpatch.joinall


def _gevent() -> tuple[Any, Any, Any, Any]:
    import gevent
    from gevent.event import Event
    from gevent.queue import Queue

    gevent.spawn(lambda: None).join()
    return Event, Queue, gevent.spawn, gevent.joinall


def _eventlet() -> tuple[Any, Any, Any, Any]:
    import eventlet
    from eventlet.event import Event
    from eventlet.queue import Queue

    class PingPongEvent(Event):  # type: ignore[misc]
        # Class-level aliases: the calls go straight to eventlet's methods.
        set = Event.send
        clear = Event.reset

    def joinall(threads: list[Any]) -> None:
        # eventlet has no joinall; waiting on each GreenThread is what one writes.
        for thread in threads:
            thread.wait()

    eventlet.spawn(lambda: None).wait()
    return PingPongEvent, Queue, eventlet.spawn, joinall


def _greenlet_workloads(load: Callable[[], tuple[Any, Any, Any, Any]]) -> dict[str, Any]:
    def event_pingpong() -> float:
        event, _, spawn, joinall = load()
        return _pingpong(event, spawn, joinall)

    def queue_unbounded() -> float:
        _, queue, spawn, joinall = load()
        return _queue(queue, spawn, joinall, None)

    def queue_maxsize1() -> float:
        _, queue, spawn, joinall = load()
        return _queue(queue, spawn, joinall, 1)

    return {
        "event_pingpong": event_pingpong,
        "queue_unbounded": queue_unbounded,
        "queue_maxsize1": queue_maxsize1,
    }


# -- asyncio and uvloop: the same shapes as coroutines -----------------------
def _async_pingpong(use_uvloop: bool) -> float:
    import asyncio

    async def player(mine: asyncio.Event, other: asyncio.Event, serve: bool) -> None:
        for _ in range(ROUND_TRIPS):
            if serve:
                other.set()
            await mine.wait()
            mine.clear()
            if not serve:
                other.set()

    async def body() -> None:
        # The events are made inside the running loop (they bind to it on 3.9).
        ping, pong = asyncio.Event(), asyncio.Event()
        await asyncio.gather(
            asyncio.create_task(player(ping, pong, True)),
            asyncio.create_task(player(pong, ping, False)),
        )

    return timed_async(body, use_uvloop)


def _async_queue(use_uvloop: bool, maxsize: int | None) -> float:
    import asyncio

    async def body() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize) if maxsize else asyncio.Queue()

        async def producer() -> None:
            put = queue.put
            for i in range(ITEMS):
                await put(i)

        async def consumer() -> None:
            get = queue.get
            for _ in range(ITEMS):
                await get()

        await asyncio.gather(asyncio.create_task(producer()), asyncio.create_task(consumer()))

    return timed_async(body, use_uvloop)


def _asyncio_workloads(use_uvloop: bool) -> dict[str, Any]:
    return {
        "event_pingpong": lambda: _async_pingpong(use_uvloop),
        "queue_unbounded": lambda: _async_queue(use_uvloop, None),
        "queue_maxsize1": lambda: _async_queue(use_uvloop, 1),
    }


WORKLOADS = {
    "greenpatch": _greenlet_workloads(_greenpatch),
    "gevent": _greenlet_workloads(_gevent),
    "eventlet": _greenlet_workloads(_eventlet),
    "asyncio": _asyncio_workloads(use_uvloop=False),
    "uvloop": _asyncio_workloads(use_uvloop=True),
}

DESCRIPTIONS = {
    "event_pingpong": f"{ROUND_TRIPS:,} Event set/wait round trips between two greenlets",
    "queue_unbounded": f"{ITEMS:,} items through an unbounded Queue, producer -> consumer",
    "queue_maxsize1": f"{ITEMS:,} items through Queue(maxsize=1), producer -> consumer",
}

if __name__ == "__main__":
    main(__file__, WORKLOADS, reference="gevent", descriptions=DESCRIPTIONS)
