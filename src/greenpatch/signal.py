"""``greenpatch.signal``: ``signal.signal``/``getsignal`` that cooperate with the hub,
as ``gevent.signal``.

The patcher's green twins, usable without patching; constants and everything
else are the standard library's.  For a handler that runs in its own greenlet
(and may block), use ``greenpatch.signal_handler`` (gevent's name too).
"""

from __future__ import annotations

import signal as _stdlib
from typing import Any

from greenpatch.hub.signal import signal_handler
from greenpatch.patcher.green.signal import getsignal, signal

__all__ = ["getsignal", "signal", "signal_handler"]


def __getattr__(name: str) -> Any:
    return getattr(_stdlib, name)
