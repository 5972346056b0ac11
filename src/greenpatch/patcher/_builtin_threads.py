"""Built-in registry rows for the threading, _thread and queue twins."""

from __future__ import annotations

from greenpatch.patcher.registry import PatchSpec

THREAD_SPECS: tuple[PatchSpec, ...] = ()
