"""The patcher room: the patch registry and the cooperative twins of stdlib modules.

    import greenpatch
    greenpatch.patch_all()      # first thing, before the application is imported

See docs/patching.md.  This package builds on the hub's public API only.
"""

from greenpatch.patcher.api import (
    ENTRY_POINT_GROUP,
    PluginAPI,
    add_hook,
    is_patched,
    load_plugins,
    original,
    patch,
    patch_all,
    patched,
    registry,
)
from greenpatch.patcher.diagnostics import GreenpatchWarning
from greenpatch.patcher.registry import PatchError, PatchSpec, Registry, UnknownPatchError

__all__ = [
    "ENTRY_POINT_GROUP",
    "GreenpatchWarning",
    "PatchError",
    "PatchSpec",
    "PluginAPI",
    "Registry",
    "UnknownPatchError",
    "add_hook",
    "is_patched",
    "load_plugins",
    "original",
    "patch",
    "patch_all",
    "patched",
    "registry",
]
