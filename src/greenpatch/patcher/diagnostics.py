"""Late-patch diagnostics: what was imported or started before ``patch_all()``.

Patching swaps names in modules.  Code that already holds the old object —
``from socket import socket`` at import time, a lock created before patching, a
thread already running — keeps it, and later blocks the whole loop.  This module
finds such references and says, for each, who holds what and what to do.

The scan is limited to the objects being replaced (an identity lookup per
module-level name), so it costs a few milliseconds even with thousands of
modules loaded.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading
from collections.abc import Iterable

from greenpatch.patcher.peers import PEER_PACKAGES
from greenpatch.patcher.registry import PatchSpec, Registry

__all__ = ["GreenpatchWarning", "late_patch_problems"]


class GreenpatchWarning(RuntimeWarning):
    """A problem with how or when patching happened."""


# Modules whose early import is itself a known trap, and why.
_EARLY_IMPORT_TRAPS = {
    "ssl": (
        "ssl was imported before patch_all(): SSL sockets created before patching stay "
        "blocking, and a context class that sets its own sslsocket_class keeps it; call "
        "greenpatch.patch_all() before importing ssl (or requests, urllib3, ...), or run "
        "the program with `greenpatch run`."
    ),
}


def _stdlib_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {os.path.realpath(paths[key]) for key in ("stdlib", "platstdlib") if key in paths}
    return tuple(d + os.sep for d in dirs)


def _is_stdlib(module: object, stdlib_dirs: tuple[str, ...]) -> bool:
    """Standard-library modules are the twins' business, not the user's: a twin that
    cares (e.g. threading's, for logging's locks) fixes them in its ``after`` hook."""
    path = getattr(module, "__file__", None)
    if not path:
        return True  # built-in and frozen modules
    real = os.path.realpath(path)
    return real.startswith(stdlib_dirs) and "site-packages" not in real


def _holders(
    registry: Registry, specs: Iterable[PatchSpec]
) -> dict[str, list[tuple[str, str, str]]]:
    specs = list(specs)
    targets = {spec.target for spec in specs}
    replaced = registry.replaced_objects(specs)
    found: dict[str, list[tuple[str, str, str]]] = {}
    if not replaced:
        return found
    stdlib_dirs = _stdlib_dirs()
    for module_name, module in list(sys.modules.items()):
        if (
            module is None
            or module_name in targets
            or module_name.startswith(("greenpatch", "_"))
            or module_name == "__main__"
            # Another green library keeps the originals on purpose (patcher/peers.py).
            or module_name.partition(".")[0] in PEER_PACKAGES
        ):
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict) or _is_stdlib(module, stdlib_dirs):
            continue
        for local_name, value in list(namespace.items()):
            hit = replaced.get(id(value))
            if hit is not None and not isinstance(value, type(sys)):
                found.setdefault(module_name, []).append((local_name, *hit))
    return found


def late_patch_problems(registry: Registry, specs: Iterable[PatchSpec]) -> list[str]:
    """One message per problem found for the patches about to be applied."""
    specs = list(specs)
    messages = []
    targets = {spec.target for spec in specs}
    for module_name, message in _EARLY_IMPORT_TRAPS.items():
        if module_name in targets and module_name in sys.modules:
            messages.append(message)
    for holder, names in sorted(_holders(registry, specs).items()):
        listed = ", ".join(
            f"{local} (the original {module}.{attr})" for local, module, attr in names
        )
        messages.append(
            f"module {holder!r} was imported before patch_all() and holds {listed}; it will "
            f"keep blocking. Call greenpatch.patch_all() before importing {holder!r}, or run "
            "the program with `greenpatch run`."
        )
    if any(spec.flag == "thread" for spec in specs):
        others = [t for t in threading.enumerate() if t is not threading.main_thread()]
        if others:
            thread_names = ", ".join(repr(t.name) for t in others)
            messages.append(
                f"OS threads were started before patch_all(): {thread_names}; they keep running as "
                "real threads and locks they hold stay real locks. Patch before starting threads."
            )
    return messages
