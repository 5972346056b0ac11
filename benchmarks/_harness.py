"""Shared benchmark harness: run each (implementation, workload) in its own
subprocess, several times, and print medians with ratios to a reference peer.

Every implementation runs in a fresh interpreter so that one library's monkey
business (gevent's hub, a uvloop policy) cannot disturb another's figures, and
all of them run in one invocation so the machine's state is the same for all.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

# A workload returns the seconds it measured (it may subtract a known floor).
Workload = Callable[[], float]


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
    """Entry point in the child: ``--worker IMPL WORKLOAD`` prints one figure."""
    _, _, implementation, workload = sys.argv[:4]
    seconds = workloads[implementation][workload]()
    print(json.dumps({"seconds": seconds}))


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
    return float(json.loads(out.stdout.strip().splitlines()[-1])["seconds"])


def main(
    script: str,
    workloads: dict[str, dict[str, Workload]],
    reference: str,
    descriptions: dict[str, str],
    lower_is_better_label: str = "time",
) -> list[Figure]:
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
    figures: list[Figure] = []
    print(f"python {sys.version.split()[0]}, {args.runs} runs each, median shown")
    print(load_average("at start"))
    for workload in names:
        print(f"\n== {workload}: {descriptions[workload]}")
        results: dict[str, Figure] = {
            implementation: Figure(implementation, workload, [])
            for implementation, table in workloads.items()
            if workload in table
        }
        # Runs are interleaved (a, b, c, a, b, c, ...) so that a change in the
        # machine's load during the invocation hits every implementation alike.
        for _ in range(args.runs):
            for implementation, figure in results.items():
                figure.runs.append(
                    run_in_subprocess(script, implementation, workload, args.timeout)
                )
        figures.extend(results.values())
        ref = results.get(reference)
        for implementation, figure in results.items():
            line = f"  {implementation:<12} {figure.median * 1000:10.1f} ms"
            if ref is not None and implementation != reference and figure.median > 0:
                line += f"   x{ref.median / figure.median:5.2f} vs {reference} (>1 = faster)"
            print(line)
    print("\n" + load_average("at end"))
    return figures


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
