"""Hub benchmarks: greenpatch against gevent, eventlet, asyncio and uvloop.

    python benchmarks/bench_hub.py [--runs 3] [--only spawn_join ...]

Workloads (targets are ratios to gevent's default loop, measured in the same run):

* spawn_join: spawn and join 100,000 no-op greenlets      (target >= 2.0x, ahead of uvloop)
* sleep0: 200,000 sleep(0) switches between two greenlets  (target >= 1.5x, ahead of uvloop)
* sleepers: 10,000 greenlets each sleeping 10 ms; the figure is
  the overhead beyond the 10 ms, lower is better                  (target <= 0.25x gevent's)

Each block also prints greenpatch's ratio to uvloop.  Each implementation runs
in its own subprocess; peers are benchmark-only dependencies (the ``bench``
extra) and a missing one is skipped.

The asyncio and uvloop versions are the same program (uvloop only replaces the
event loop), and the nearest asyncio shape of each workload, not the same one:
a task is a coroutine driven by the loop, not a greenlet with a stack of its
own, so "spawn" is ``create_task``, "join" is ``gather`` and ``sleep(0)`` is a
bare yield to the loop (``asyncio.sleep(0)`` skips the timer entirely).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import main, timed, timed_async

SPAWN_N = 100_000
WARM_N = 100  # greenlets spawned and joined before timing: the hub and its pools exist
SWITCH_N = 100_000  # per greenlet, two greenlets
SLEEPERS_N = 10_000
SLEEP_S = 0.01


def _noop() -> None:
    pass


# -- greenlet libraries ------------------------------------------------------
# greenpatch, gevent and eventlet run the very same functions; only spawn, join
# and sleep come from the library.


def _spawn_join(spawn: Any, joinall: Any) -> float:
    joinall([spawn(_noop) for _ in range(WARM_N)])
    return timed(lambda: joinall([spawn(_noop) for _ in range(SPAWN_N)]))


def _sleep0(spawn: Any, joinall: Any, sleep: Any) -> float:
    def pinger() -> None:
        for _ in range(SWITCH_N):
            sleep(0)

    joinall([spawn(_noop)])
    return timed(lambda: joinall([spawn(pinger), spawn(pinger)]))


def _sleepers(spawn: Any, joinall: Any, sleep: Any) -> float:
    joinall([spawn(_noop)])
    return timed(lambda: joinall([spawn(sleep, SLEEP_S) for _ in range(SLEEPERS_N)])) - SLEEP_S


def _greenpatch() -> tuple[Any, Any, Any]:
    import greenpatch

    return greenpatch.spawn, greenpatch.joinall, greenpatch.sleep


def _gevent() -> tuple[Any, Any, Any]:
    import gevent

    return gevent.spawn, gevent.joinall, gevent.sleep


def _eventlet() -> tuple[Any, Any, Any]:
    import eventlet

    # eventlet has no joinall: waiting on each GreenThread in turn is what one
    # writes with it (and what gevent's joinall amounts to when all finish).
    def joinall(threads: list[Any]) -> None:
        for thread in threads:
            thread.wait()

    return eventlet.spawn, joinall, eventlet.sleep


def _greenlet_workloads(load: Callable[[], tuple[Any, Any, Any]]) -> dict[str, Any]:
    def spawn_join() -> float:
        spawn, joinall, _ = load()
        return _spawn_join(spawn, joinall)

    def sleep0() -> float:
        return _sleep0(*load())

    def sleepers() -> float:
        return _sleepers(*load())

    return {"spawn_join": spawn_join, "sleep0": sleep0, "sleepers": sleepers}


# -- asyncio and uvloop ------------------------------------------------------
def _asyncio_workloads(use_uvloop: bool) -> dict[str, Any]:
    def spawn_join() -> float:
        import asyncio

        async def noop() -> None:
            pass

        async def body() -> None:
            await asyncio.gather(*[asyncio.create_task(noop()) for _ in range(SPAWN_N)])

        return timed_async(body, use_uvloop, warm=WARM_N)

    def sleep0() -> float:
        import asyncio

        async def pinger() -> None:
            for _ in range(SWITCH_N):
                await asyncio.sleep(0)

        async def body() -> None:
            await asyncio.gather(asyncio.create_task(pinger()), asyncio.create_task(pinger()))

        return timed_async(body, use_uvloop)

    def sleepers() -> float:
        import asyncio

        async def body() -> None:
            await asyncio.gather(
                *[asyncio.create_task(asyncio.sleep(SLEEP_S)) for _ in range(SLEEPERS_N)]
            )

        return timed_async(body, use_uvloop) - SLEEP_S

    return {"spawn_join": spawn_join, "sleep0": sleep0, "sleepers": sleepers}


WORKLOADS = {
    "greenpatch": _greenlet_workloads(_greenpatch),
    "gevent": _greenlet_workloads(_gevent),
    "eventlet": _greenlet_workloads(_eventlet),
    "asyncio": _asyncio_workloads(use_uvloop=False),
    "uvloop": _asyncio_workloads(use_uvloop=True),
}

DESCRIPTIONS = {
    "spawn_join": f"spawn+join {SPAWN_N:,} no-op greenlets (asyncio: create_task + gather)",
    "sleep0": f"{2 * SWITCH_N:,} sleep(0) switches between two greenlets",
    "sleepers": (
        f"{SLEEPERS_N:,} greenlets sleeping {SLEEP_S * 1000:.0f} ms: "
        "overhead beyond the sleep (lower is better)"
    ),
}

if __name__ == "__main__":
    main(__file__, WORKLOADS, reference="gevent", descriptions=DESCRIPTIONS)
