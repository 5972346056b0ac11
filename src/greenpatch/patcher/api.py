"""``patch_all()`` and friends: the public face of the registry.

One process-wide ``Registry`` holds the built-in patches (``_builtin.py``) and
whatever plugins add through the entry-point group ``greenpatch.patches``.  A
plugin entry point names a callable; it is called once with the ``PluginAPI``
and registers ``PatchSpec`` rows and hooks with it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from greenpatch.patcher import diagnostics
from greenpatch.patcher._builtin import BUILTIN_SPECS, PATCH_ORDER
from greenpatch.patcher.registry import PatchError, PatchSpec, Registry

__all__ = [
    "BUILTIN_PATCH_NAMES",
    "ENTRY_POINT_GROUP",
    "HOOK_EVENTS",
    "PATCH_ALL_FLAGS",
    "PluginAPI",
    "add_hook",
    "is_patched",
    "load_plugins",
    "original",
    "patch",
    "patch_all",
    "patched",
    "registry",
]

ENTRY_POINT_GROUP = "greenpatch.patches"
HOOK_EVENTS = ("before_patch_all", "after_patch_all")
#: ``patch_all``'s own flags, each naming a group of built-in patches (plugins add theirs).
PATCH_ALL_FLAGS = (
    "socket",
    "dns",
    "time",
    "select",
    "thread",
    "os",
    "ssl",
    "subprocess",
    "signal",
    "queue",
)

Hook = Callable[[dict[str, bool]], None]

registry = Registry()
#: The names of the built-in rows (anything else in the registry came from a plugin).
BUILTIN_PATCH_NAMES = tuple(spec.name for spec in BUILTIN_SPECS)
for _spec in BUILTIN_SPECS:
    registry.register(_spec)
del _spec

_hooks: dict[str, list[Hook]] = {event: [] for event in HOOK_EVENTS}
_plugins_loaded = False


class PluginAPI:
    """What a plugin's entry point receives: ``register(spec)`` and ``add_hook``."""

    def register(self, spec: PatchSpec) -> None:
        registry.register(spec)

    def add_hook(self, event: str, hook: Hook) -> None:
        add_hook(event, hook)


def add_hook(event: str, hook: Hook) -> None:
    """Call ``hook(flags)`` before or after every ``patch_all`` that does work.

    ``event`` is ``"before_patch_all"`` or ``"after_patch_all"``; ``flags`` is the
    dict of ``patch_all`` keyword arguments in force.
    """
    if event not in _hooks:
        raise ValueError(f"unknown hook event {event!r}; expected one of {', '.join(HOOK_EVENTS)}")
    if not callable(hook):
        raise TypeError(f"a hook must be callable, got {hook!r}")
    _hooks[event].append(hook)


def load_plugins() -> list[str]:
    """Load the ``greenpatch.patches`` entry points once; returns their names."""
    global _plugins_loaded
    if _plugins_loaded:
        return []
    _plugins_loaded = True
    # Not importlib.metadata: its import alone costs more than the rest of
    # patch_all() (see _entry_points.py).
    from greenpatch.patcher import _entry_points

    loaded = []
    api = PluginAPI()
    entry_points = _entry_points.find(ENTRY_POINT_GROUP)
    for entry_point in entry_points:
        try:
            plugin = entry_point.load()
            if isinstance(plugin, PatchSpec):
                registry.register(plugin)
            else:
                plugin(api)
        except Exception as exc:
            warnings.warn(
                f"greenpatch plugin {entry_point.name!r} ({entry_point.value}) failed to load: "
                f"{type(exc).__name__}: {exc}",
                diagnostics.GreenpatchWarning,
                stacklevel=2,
            )
            continue
        loaded.append(entry_point.name)
    return loaded


def patch(name: str) -> bool:
    """Apply the patch called ``name`` (see ``registry.specs``); False if already applied."""
    load_plugins()
    return registry.patch(name)


def is_patched(name: str) -> bool:
    """Whether the patch ``name`` is in force; an unknown name raises ``UnknownPatchError``."""
    load_plugins()
    return registry.is_patched(name)


def patched() -> list[str]:
    """The names of the patches in force, in the order they were applied."""
    return registry.patched()


def original(module: str, attr: str) -> Any:
    """The unpatched ``module.attr`` (e.g. ``original("time", "sleep")``)."""
    return registry.original(module, attr)


def patch_all(
    socket: bool = True,
    dns: bool = True,
    time: bool = True,
    select: bool = True,
    thread: bool = True,
    os: bool = True,
    ssl: bool = True,
    subprocess: bool = True,
    signal: bool = True,
    queue: bool = True,
    aggressive: bool = False,
    warn_late: bool = True,
    **plugin_flags: bool,
) -> list[str]:
    """Make the blocking parts of the standard library cooperative.

    Call it first thing, before the application (or ``ssl``, ``requests``, ...)
    is imported.  Calling it again is a no-op for what is already patched.
    ``aggressive`` also removes what cannot be made cooperative (``select.epoll``
    and friends) so that libraries fall back to what can.  Extra keyword
    arguments switch plugin patches by their flag.  Returns the patches applied
    by this call.
    """
    load_plugins()
    flags = {
        "socket": socket,
        "dns": dns,
        "time": time,
        "select": select,
        "thread": thread,
        "os": os,
        "ssl": ssl,
        "subprocess": subprocess,
        "signal": signal,
        "queue": queue,
    }
    known_flags = {spec.flag for spec in registry.specs}
    unknown = set(plugin_flags) - known_flags
    if unknown:
        raise TypeError(
            f"patch_all() got unknown flags {sorted(unknown)}; known: {sorted(known_flags)}"
        )
    flags.update(plugin_flags)
    order = [flag for flag in PATCH_ORDER if flag in flags]
    order += sorted(flag for flag in known_flags if flag not in order)
    todo = [
        spec
        for flag in order
        if flags.get(flag, True)
        for spec in registry.specs_for_flag(flag)
        if (aggressive or not spec.aggressive_only) and not registry.is_patched(spec.name)
    ]
    if not todo:
        return []
    hook_flags = dict(flags, aggressive=aggressive)
    for hook in _hooks["before_patch_all"]:
        hook(hook_flags)
    if warn_late:
        for message in diagnostics.late_patch_problems(registry, todo):
            warnings.warn(message, diagnostics.GreenpatchWarning, stacklevel=2)
    applied = []
    for spec in todo:
        try:
            if registry.patch(spec.name):
                applied.append(spec.name)
        except PatchError:
            raise
        except Exception as exc:
            raise PatchError(f"patch {spec.name!r} failed: {type(exc).__name__}: {exc}") from exc
    from greenpatch.patcher import peers  # here: `import greenpatch` does not need it

    peers.install(registry)  # gevent imports the unpatched stdlib (see peers.py)
    for hook in _hooks["after_patch_all"]:
        hook(hook_flags)
    return applied
