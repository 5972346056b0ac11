"""Synchronisation benchmarks: greenpatch against gevent.

    python benchmarks/bench_sync.py [--runs 3] [--only event_pingpong ...]

Workloads (targets are ratios to gevent's default loop, measured in the same run):

* event_pingpong: 100,000 Event set/wait round trips between two greenlets  (>= 1.0x)
* queue_unbounded: 100,000 items put by a producer, got by a consumer        (>= 1.0x)
* queue_maxsize1: the same through a Queue(maxsize=1)                         (>= 1.0x)

Each implementation runs in its own subprocess (see _harness.py).
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import available, main, timed

ROUND_TRIPS = 100_000
ITEMS = 100_000


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


def _workloads(load: Any) -> dict[str, Any]:
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


WORKLOADS = {"greenpatch": _workloads(_greenpatch)}
if available("gevent"):
    WORKLOADS["gevent"] = _workloads(_gevent)

DESCRIPTIONS = {
    "event_pingpong": f"{ROUND_TRIPS:,} Event set/wait round trips between two greenlets",
    "queue_unbounded": f"{ITEMS:,} items through an unbounded Queue, producer -> consumer",
    "queue_maxsize1": f"{ITEMS:,} items through Queue(maxsize=1), producer -> consumer",
}

if __name__ == "__main__":
    main(__file__, WORKLOADS, reference="gevent", descriptions=DESCRIPTIONS)
