"""``greenpatch.select``: cooperative ``select``/``poll``, as ``gevent.select``.

The patcher's green twins, usable without patching; the rest (constants,
``error``) is the standard library's.
"""

from __future__ import annotations

import select as _stdlib
from typing import Any

from greenpatch.patcher.green.select import error, poll, select

__all__ = ["error", "poll", "select"]


def __getattr__(name: str) -> Any:
    return getattr(_stdlib, name)
