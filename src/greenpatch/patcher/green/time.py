"""Green ``time``: ``sleep`` yields to the hub instead of blocking the thread."""

from __future__ import annotations

from greenpatch.hub import get_hub

__target__ = "time"
__implements__ = ["sleep"]


def sleep(secs: float) -> None:
    """Suspend the calling greenlet for ``secs`` seconds (stdlib signature and errors)."""
    if secs < 0:
        raise ValueError("sleep length must be non-negative")
    get_hub().sleep(secs)
