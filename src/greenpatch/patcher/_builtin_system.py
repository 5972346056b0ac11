"""Built-in registry rows for the ssl, subprocess, os and signal twins."""

from __future__ import annotations

from greenpatch.patcher.registry import PatchSpec

SYSTEM_SPECS: tuple[PatchSpec, ...] = ()
