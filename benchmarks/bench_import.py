"""Import + patch time: ``import greenpatch; greenpatch.patch_all()`` against gevent's.

    python benchmarks/bench_import.py [--runs 5]

Each figure comes from a fresh interpreter (one subprocess per run), so nothing
is cached in ``sys.modules``.  The goal (docs/performance.md): below gevent's.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import main, timed


def gp_import_patch() -> float:
    def run() -> None:
        import greenpatch

        greenpatch.patch_all()

    return timed(run)


def gevent_import_patch() -> float:
    def run() -> None:
        from gevent import monkey

        monkey.patch_all()

    return timed(run)


# A peer that is not installed is skipped by the harness, with a line saying so.
WORKLOADS = {
    "greenpatch": {"import_patch": gp_import_patch},
    "gevent": {"import_patch": gevent_import_patch},
}

DESCRIPTIONS = {"import_patch": "import the library and patch the standard library"}

if __name__ == "__main__":
    main(__file__, WORKLOADS, reference="gevent", descriptions=DESCRIPTIONS)
