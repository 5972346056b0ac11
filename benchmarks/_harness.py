"""Shared benchmark harness: run each (implementation, workload) in its own
subprocess, several times, and print medians with ratios to a reference peer.

Every implementation runs in a fresh interpreter so that one library's monkey
business (gevent's hub, a uvloop policy) cannot disturb another's figures, and
all of them run in one invocation so the machine's state is the same for all.

A peer that is not installed is skipped with a line saying so, never an error:
the peers are benchmark-only dependencies (the ``bench`` extra).  Besides the
ratio to the reference (gevent), each block ends with greenpatch's ratio to
uvloop when both ran: the issue tracker asked for every hub figure to be read
against the fastest asyncio loop too, in the same invocation.

A figure is a time by default (``TIME``: the worker returns seconds) or another
lower-is-better quantity (``MEMORY``: the worker returns bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Callable

# A workload returns what it measured (seconds for TIME, bytes for MEMORY; it
# may subtract a known floor).
Workload = Callable[[], float]


@dataclass(frozen=True)
class Unit:
    """How a workload's figure is printed and compared.

    Both units are lower-is-better; they differ in which way the ratio reads.
    A time ratio is reference / figure, so that "x2.00" means twice as fast (the
    way speed-ups are usually quoted); a memory ratio is figure / reference, so
    that "x0.50" means half the memory (the way sizes are usually quoted).
    """

    symbol: str
    scale: float  # the worker's value times this is the printed figure
    digits: int
    speed: bool  # True: ratio = reference / figure; False: figure / reference
    meaning: str

    def ratio(self, figure: float, reference: float) -> float:
        return reference / figure if self.speed else figure / reference


TIME = Unit("ms", 1000.0, 1, speed=True, meaning=">1 = faster")
MEMORY = Unit("KiB", 1 / 1024, 2, speed=False, meaning="<1 = less memory")

# Which module each implementation needs; any other name is its own module.
MODULES = {"asyncio": "asyncio", "gevent-nodelay": "gevent"}


@dataclass
class Figure:
    implementation: str
    workload: str
    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def available(module: str) -> bool:
    """Whether ``module`` is installed, without importing it (an import here would
    load a peer into every worker process, and hide its import time)."""
    import importlib.util

    return importlib.util.find_spec(module) is not None


def worker_main(workloads: dict[str, dict[str, Workload]]) -> None:
    """Entry point in the child: ``--worker IMPL WORKLOAD`` prints one figure.

    The child then ends with ``os._exit``: its teardown is not part of any
    figure, and a memory workload leaves 100,000 blocked greenlets or tasks
    behind that an orderly shutdown would unwind one by one (asyncio.run cancels
    every task) for nothing.
    """
    _, _, implementation, workload = sys.argv[:4]
    value = workloads[implementation][workload]()
    sys.stdout.write(json.dumps({"value": value}) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_in_subprocess(script: str, implementation: str, workload: str, timeout: float) -> float:
    out = subprocess.run(
        [sys.executable, script, "--worker", implementation, workload],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{implementation}/{workload} failed:\n{out.stderr}")
    return float(json.loads(out.stdout.strip().splitlines()[-1])["value"])


def main(
    script: str,
    workloads: dict[str, dict[str, Workload]],
    reference: str,
    descriptions: dict[str, str],
    unit: Unit = TIME,
    versus: tuple[str, str] = ("greenpatch", "uvloop"),
) -> list[Figure]:
    """Run every workload of every installed implementation, interleaved, and print
    one block per workload: medians, the ratio to ``reference``, then the ratio
    of ``versus[0]`` to ``versus[1]`` when both ran."""
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(workloads)
        return []
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="workloads to run (default: all)")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    names = sorted({w for impl in workloads.values() for w in impl}, key=list(descriptions).index)
    if args.only:
        names = [n for n in names if n in args.only]
    missing = [impl for impl in workloads if not available(MODULES.get(impl, impl))]
    figures: list[Figure] = []
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, median shown")
    print(load_average("at start"))
    for workload in names:
        print(f"\n== {workload}: {descriptions[workload]}")
        results: dict[str, Figure] = {
            implementation: Figure(implementation, workload, [])
            for implementation, table in workloads.items()
            if workload in table and implementation not in missing
        }
        # Runs are interleaved (a, b, c, a, b, c, ...) so that a change in the
        # machine's load during the invocation hits every implementation alike.
        for _ in range(args.runs):
            for implementation, figure in results.items():
                figure.runs.append(
                    run_in_subprocess(script, implementation, workload, args.timeout)
                )
        figures.extend(results.values())
        _print_block(workloads, workload, results, reference, unit, versus)
    print("\n" + load_average("at end"))
    return figures


def _print_block(
    workloads: dict[str, dict[str, Workload]],
    workload: str,
    results: dict[str, Figure],
    reference: str,
    unit: Unit,
    versus: tuple[str, str],
) -> None:
    ref = results.get(reference)
    for implementation, table in workloads.items():
        if workload not in table:
            continue
        figure = results.get(implementation)
        if figure is None:
            print(f"  {implementation:<12} (not installed: skipped)")
            continue
        shown = f"{figure.median * unit.scale:10.{unit.digits}f}"
        line = f"  {implementation:<12} {shown} {unit.symbol}"
        if ref is not None and implementation != reference and figure.median > 0:
            ratio = unit.ratio(figure.median, ref.median)
            line += f"   x{ratio:5.2f} vs {reference} ({unit.meaning})"
        print(line)
    ours, theirs = (results.get(name) for name in versus)
    if ours is not None and theirs is not None and ours.median > 0 and theirs.median > 0:
        ratio = unit.ratio(ours.median, theirs.median)
        print(f"  {versus[0]} vs {versus[1]} x{ratio:.2f} ({unit.meaning})")


def load_average(when: str) -> str:
    """The machine's load average, printed with every invocation: a figure taken on
    a busy machine is not comparable with one taken on an idle one."""
    one, five, fifteen = os.getloadavg()
    return (
        f"load average {when}: {one:.2f} {five:.2f} {fifteen:.2f} "
        f"(1/5/15 min, {os.cpu_count()} CPUs)"
    )


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def timed_async(body: Callable[[], Awaitable[Any]], use_uvloop: bool, warm: int = 1) -> float:
    """Time ``await body()`` on a fresh asyncio loop (uvloop's with ``use_uvloop``).

    Before the clock starts, ``warm`` no-op tasks run to completion: the same
    warm-up the greenlet versions get from spawning and joining as many no-op
    greenlets (the loop exists and has run once).  The loop is made by
    ``asyncio.run`` or ``uvloop.run``, the way a program would make it.
    """
    import asyncio

    async def noop() -> None:
        pass

    async def outer() -> float:
        await asyncio.gather(*[asyncio.create_task(noop()) for _ in range(warm)])
        started = time.perf_counter()
        await body()
        return time.perf_counter() - started

    if use_uvloop:
        import uvloop

        return float(uvloop.run(outer()))
    return asyncio.run(outer())
