"""1,000 concurrent sleepers finish in about one sleep.

    python docs/examples/sleepers.py [count] [seconds]

Each greenlet sleeps for ``seconds``; run one after another they would take
``count * seconds``; on the hub they overlap and the whole batch takes a little
more than one sleep.
"""

from __future__ import annotations

import sys
import time

import greenpatch


def run(count: int = 1000, seconds: float = 0.5) -> float:
    """Spawn ``count`` sleepers, wait for all, return the wall time."""
    started = time.perf_counter()
    sleepers = [greenpatch.spawn(greenpatch.sleep, seconds) for _ in range(count)]
    greenpatch.joinall(sleepers)
    elapsed = time.perf_counter() - started
    if not all(g.successful() for g in sleepers):
        raise SystemExit("some sleepers failed")
    return elapsed


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
    elapsed = run(count, seconds)
    print(f"{count:,} greenlets each slept {seconds:.2f} s")
    print(f"one after another: {count * seconds:,.1f} s")
    print(f"on the hub:        {elapsed:.3f} s ({elapsed / seconds:.2f}x one sleep)")


if __name__ == "__main__":
    main()
