"""Hub benchmarks: greenpatch against gevent (and asyncio where the figure applies).

    python benchmarks/bench_hub.py [--runs 3] [--only spawn_join ...]

Workloads (targets are ratios to gevent's default loop, measured in the same run):

* spawn_join: spawn and join 100,000 no-op greenlets            (target >= 2.0x faster)
* sleep0: 200,000 sleep(0) switches between two greenlets        (target >= 1.0x)
* sleepers: 10,000 greenlets each sleeping 10 ms; the figure is
  the overhead beyond the 10 ms                                   (target <= 0.5x gevent's)

Each implementation runs in its own subprocess; peers are benchmark-only
dependencies (``pip install gevent``).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import available, main, timed

SPAWN_N = 100_000
SWITCH_N = 100_000  # per greenlet, two greenlets
SLEEPERS_N = 10_000
SLEEP_S = 0.01


def _noop() -> None:
    pass


# -- greenpatch --------------------------------------------------------------
def gp_spawn_join() -> float:
    import greenpatch

    greenpatch.joinall([greenpatch.spawn(_noop) for _ in range(100)])  # warm the hub
    return timed(lambda: greenpatch.joinall([greenpatch.spawn(_noop) for _ in range(SPAWN_N)]))


def gp_sleep0() -> float:
    import greenpatch

    sleep = greenpatch.sleep

    def pinger() -> None:
        for _ in range(SWITCH_N):
            sleep(0)

    greenpatch.spawn(_noop).join()
    return timed(lambda: greenpatch.joinall([greenpatch.spawn(pinger), greenpatch.spawn(pinger)]))


def gp_sleepers() -> float:
    import greenpatch

    greenpatch.spawn(_noop).join()

    def run() -> None:
        greenpatch.joinall([greenpatch.spawn(greenpatch.sleep, SLEEP_S) for _ in range(SLEEPERS_N)])

    return timed(run) - SLEEP_S


# -- gevent ------------------------------------------------------------------
def gevent_spawn_join() -> float:
    import gevent

    gevent.joinall([gevent.spawn(_noop) for _ in range(100)])
    return timed(lambda: gevent.joinall([gevent.spawn(_noop) for _ in range(SPAWN_N)]))


def gevent_sleep0() -> float:
    import gevent

    sleep = gevent.sleep

    def pinger() -> None:
        for _ in range(SWITCH_N):
            sleep(0)

    gevent.spawn(_noop).join()
    return timed(lambda: gevent.joinall([gevent.spawn(pinger), gevent.spawn(pinger)]))


def gevent_sleepers() -> float:
    import gevent

    gevent.spawn(_noop).join()

    def run() -> None:
        gevent.joinall([gevent.spawn(gevent.sleep, SLEEP_S) for _ in range(SLEEPERS_N)])

    return timed(run) - SLEEP_S


# -- asyncio -----------------------------------------------------------------
def asyncio_spawn_join() -> float:
    import asyncio

    async def noop() -> None:
        pass

    async def body() -> None:
        await asyncio.gather(*[asyncio.create_task(noop()) for _ in range(SPAWN_N)])

    return _asyncio_timed(body)


def asyncio_sleep0() -> float:
    import asyncio

    async def pinger() -> None:
        for _ in range(SWITCH_N):
            await asyncio.sleep(0)

    async def body() -> None:
        await asyncio.gather(pinger(), pinger())

    return _asyncio_timed(body)


def asyncio_sleepers() -> float:
    import asyncio

    async def body() -> None:
        await asyncio.gather(*[asyncio.sleep(SLEEP_S) for _ in range(SLEEPERS_N)])

    return _asyncio_timed(body) - SLEEP_S


def _asyncio_timed(body) -> float:  # type: ignore[no-untyped-def]
    import asyncio
    import time

    async def outer() -> float:
        await asyncio.sleep(0)
        started = time.perf_counter()
        await body()
        return time.perf_counter() - started

    return asyncio.run(outer())


WORKLOADS = {
    "greenpatch": {"spawn_join": gp_spawn_join, "sleep0": gp_sleep0, "sleepers": gp_sleepers}
}
if available("gevent"):
    WORKLOADS["gevent"] = {
        "spawn_join": gevent_spawn_join,
        "sleep0": gevent_sleep0,
        "sleepers": gevent_sleepers,
    }
WORKLOADS["asyncio"] = {
    "spawn_join": asyncio_spawn_join,
    "sleep0": asyncio_sleep0,
    "sleepers": asyncio_sleepers,
}

DESCRIPTIONS = {
    "spawn_join": f"spawn+join {SPAWN_N:,} no-op greenlets",
    "sleep0": f"{2 * SWITCH_N:,} sleep(0) switches between two greenlets",
    "sleepers": (
        f"{SLEEPERS_N:,} greenlets sleeping {SLEEP_S * 1000:.0f} ms: overhead beyond the sleep"
    ),
}

if __name__ == "__main__":
    main(__file__, WORKLOADS, reference="gevent", descriptions=DESCRIPTIONS)
