"""What a stall's kind means and what to do about it, in one sentence per kind.

Shared by every place that shows hot spots to a person (the harness's summary,
the pytest plugin's), so that the same stall gets the same advice everywhere.
Imports nothing: the pytest plugin shows it without the ``compat`` extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["STALL_ADVICE", "spot_kind"]

#: One entry per kind of ``stall.classify``.
STALL_ADVICE = {
    "cpu": (
        "the hub's thread was computing (a busy loop, a C extension working): "
        "move the work to a thread (hub.threadpool) or let it yield"
    ),
    "blocked": (
        "the hub's thread waited in a system call the patch does not reach (a C client "
        "on its socket, an unpatched sleep or lock): patch before the import, use a "
        "pure-Python client, or run the call in a thread"
    ),
    "unscheduled": (
        "the process was not running at all (an overloaded machine, a suspended VM): "
        "not the library's doing; re-run on a quieter machine"
    ),
    "unknown": "no CPU accounting on this platform: judge by the frame",
}


def spot_kind(spot: Mapping[str, Any]) -> str:
    """The kind of a hot spot or record, ``"unknown"`` when it has none we know."""
    kind = spot.get("kind")
    return kind if isinstance(kind, str) and kind in STALL_ADVICE else "unknown"
