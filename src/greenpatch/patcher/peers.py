"""Other green libraries in the same process: gevent sees the unpatched standard library.

The problem
-----------
Libraries ship optional gevent adapters and test them, so a suite run under
``patch_all()`` imports gevent into a patched process.  gevent is written on the
assumption that it is imported before any monkey-patching: its modules take
``_thread.start_new_thread``, ``allocate_lock``, ``get_ident`` and ``_local`` at
import time -- by ``import _thread``, by ``__import__("_thread")`` and through
``gevent.monkey.get_original``, which, when gevent itself patched nothing,
simply imports the module -- and expect the real, OS-level ones.  After
``patch_all()`` they got ours: gevent's thread pool started *greenpatch
greenlets* as its workers, gevent's hub then waited for them inside its own
libev loop, where greenpatch's hub never runs, and the process hung
(``gevent.get_hub().threadpool.apply(f)``).  Its hub-per-thread storage
(``_thread._local``) and its cross-thread wake-ups (``get_ident``,
``allocate_lock``) were wrong in the same way, only less visibly.

What we do
----------
While a module of a peer package (``gevent`` and its submodules) is being
created and executed, ``sys.modules`` holds a *native view* of every module a
patch changed: a module object that answers the replaced names with the
originals the registry saved and forwards every other name to the real module
(so state such as ``threading._active`` stays shared, not copied).  The peer's
import-time ``import _thread``, ``__import__("_thread")``, ``from time import
sleep`` and ``get_original(...)`` therefore bind the real thread primitives, and
everything the peer does later with them -- start its pool's workers, keep a hub
per OS thread -- is what it would do unpatched.  The finder that arranges this
sits first in ``sys.meta_path`` (from ``install``, called by ``patch_all``); it
asks the other finders for the spec and wraps the loader.  Modules that are not
the peer's but are imported *during* the peer's import (``concurrent.futures``
first imported by gevent's thread pool, say) are executed with the real,
patched modules back in place, so they stay cooperative for the program.

Rejected, with reasons:

* Filling gevent's ``gevent.monkey._state.saved`` with our originals.  It is
  private, it covers only the ``get_original`` callers (``gevent.hub`` and
  ``gevent._hub_local`` import ``_thread`` directly), and it makes
  ``gevent.monkey.is_module_patched`` answer True, which changes gevent's own
  decisions.
* Rewriting the globals of each gevent module after its import.  Several are
  Cython extension modules (``_gevent_c_*``) whose globals are C variables.
* Importing gevent's modules eagerly before patching whenever gevent is
  installed: an import of a large package nobody asked for, with its side
  effects, in every patched process.
* Only detecting gevent and warning.  The thread pool can be made to work, so
  it is.

What still does not work, and is said once
-------------------------------------------
gevent's loop and greenpatch's hub are two event loops on one OS thread: while
one waits, the other does not run.  Code that waits in gevent for something a
greenpatch greenlet (a patched thread, a patched socket's peer) must do, or the
other way round, waits for ever -- a server in a patched thread and a
``gevent.socket`` client in the same thread, for instance.  The first time a
peer is imported into a patched process (or at ``install`` if it already was),
a ``GreenpatchWarning`` says so.  ``gevent.monkey.patch_all()`` on top of
``greenpatch.patch_all()`` is not supported at all: each would save the other's
objects as "originals".

Limits: the views are in ``sys.modules`` only while a peer's module executes;
another OS thread importing at that very moment would see them too (greenpatch
itself runs Python code in real threads only in its thread pool).  Peer
modules imported before ``install`` keep what they bound then -- the originals,
if that was before ``patch_all()``.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from greenpatch.patcher.registry import MISSING, Registry

__all__ = ["PEER_PACKAGES", "install", "installed", "native_views", "uninstall"]

#: Top-level packages of green libraries that expect the unpatched stdlib.
PEER_PACKAGES = ("gevent",)

_WARNING = (
    "{peer} is imported into a process patched by greenpatch. Its modules see the "
    "unpatched standard library (its thread pool runs real threads), but {peer}'s loop "
    "and greenpatch's hub take turns on this thread: while one waits, the other's "
    "greenlets (and greenpatch's patched threads) do not run. Code that waits in "
    "{peer} for something a patched thread or socket must do, or the other way round, "
    "waits for ever. See docs/patching.md, 'Other green libraries in the same process'."
)


class _NativeView(ModuleType):
    """A module as it was before patching: the saved originals for the names a
    patch replaced (absent where there was nothing), every other name from the
    real module at the time it is asked for."""

    def __init__(self, real: ModuleType, originals: dict[str, Any]) -> None:
        super().__init__(real.__name__, real.__doc__)
        for dunder in ("__file__", "__spec__", "__loader__", "__package__"):
            if dunder in real.__dict__:
                self.__dict__[dunder] = real.__dict__[dunder]
        self.__dict__["_NativeView__real"] = real
        self.__dict__["_NativeView__absent"] = frozenset(
            name for name, value in originals.items() if value is MISSING
        )
        self.__dict__.update(
            (name, value) for name, value in originals.items() if value is not MISSING
        )

    def __getattr__(self, name: str) -> Any:
        # Only called for names the view does not hold itself.
        if name in self.__dict__["_NativeView__absent"]:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        return getattr(self.__dict__["_NativeView__real"], name)

    def __repr__(self) -> str:
        return f"<module {self.__name__!r} (greenpatch: the unpatched view)>"


def native_views(registry: Registry) -> dict[str, ModuleType]:
    """A native view of each module, present in ``sys.modules``, that a patch changed."""
    by_module: dict[str, dict[str, Any]] = {}
    for (module, attr), value in registry.originals().items():
        by_module.setdefault(module, {})[attr] = value
    views: dict[str, ModuleType] = {}
    for module, originals in by_module.items():
        real = sys.modules.get(module)
        if real is None or isinstance(real, _NativeView):
            continue
        # Only the names that differ now: an unpatched row is the real thing already.
        changed = {
            attr: value
            for attr, value in originals.items()
            if getattr(real, attr, MISSING) is not value
        }
        if changed:
            views[module] = _NativeView(real, changed)
    return views


def _is_peer(fullname: str) -> bool:
    top = fullname.partition(".")[0]
    return top in PEER_PACKAGES


class _PeerFinder:
    """First in ``sys.meta_path``: hands out the specs the other finders find, with
    a loader that executes peer modules among native views (see the module docstring)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        # One frame per module being executed under our loader, innermost last:
        # (sees native views?, what sys.modules held before the frame swapped).
        # Imports run on one OS thread at a time per module, and greenpatch's
        # greenlets do not switch inside an import unless the module itself waits;
        # one stack is enough (see the module docstring for the limits).
        self._frames: list[tuple[bool, dict[str, ModuleType | None]]] = []
        #: While views are in place: the real modules they stand in for.
        self._reals: dict[str, ModuleType | None] = {}
        self._warned: set[str] = set()

    # -- the finder protocol -----------------------------------------------------
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        peer = _is_peer(fullname)
        if not peer and not (self._frames and self._frames[-1][0]):
            return None  # the common case: nothing of ours to do
        spec = None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            if find is not None:
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _SeeingLoader(spec.loader, self, views=peer)
        return spec

    def invalidate_caches(self) -> None:
        pass

    # -- what sys.modules shows ----------------------------------------------------
    @contextmanager
    def seeing(self, views: bool) -> Iterator[None]:
        """Run the body with native views in ``sys.modules`` (or the real modules)."""
        current = self._frames[-1][0] if self._frames else False
        previous: dict[str, ModuleType | None] = {}
        if views != current:
            if views:
                wanted: dict[str, Any] = native_views(self.registry)
            else:
                wanted = {name: real for name, real in self._reals.items() if real is not None}
            previous = {name: sys.modules.get(name) for name in wanted}
            sys.modules.update(wanted)
            if views and not self._frames:
                self._reals = previous
        self._frames.append((views, previous))
        try:
            yield
        finally:
            self._frames.pop()
            for name, module in previous.items():
                if module is None:
                    sys.modules.pop(name, None)
                else:
                    sys.modules[name] = module
            if not self._frames:
                self._reals = {}

    def _warn_once(self, peer: str, stacklevel: int) -> None:
        if peer in self._warned or not self.registry.patched():
            return
        self._warned.add(peer)
        # Imported here: diagnostics may then import PEER_PACKAGES from us.
        from greenpatch.patcher.diagnostics import GreenpatchWarning

        # ``stacklevel`` counts from our caller; the warnings module skips
        # importlib's own frames, so 2 from exec_module is the import statement.
        warnings.warn(_WARNING.format(peer=peer), GreenpatchWarning, stacklevel=stacklevel + 1)


class _SeeingLoader:
    """Wraps a module's own loader; creates and executes the module inside
    ``_PeerFinder.seeing``.  Every other attribute (``get_source``,
    ``get_filename``, resource readers...) is the wrapped loader's."""

    def __init__(self, loader: Any, finder: _PeerFinder, views: bool) -> None:
        self._loader = loader
        self._finder = finder
        self._views = views

    def create_module(self, spec: Any) -> Any:
        # An extension module with single-phase initialisation runs its whole body
        # here, not in exec_module.
        create = getattr(self._loader, "create_module", None)
        if create is None:
            return None
        with self._finder.seeing(self._views):
            return create(spec)

    def exec_module(self, module: ModuleType) -> None:
        # Here, not in find_spec: importlib.util.find_spec("gevent") (a check for
        # an optional dependency) imports nothing and deserves no warning.
        if self._views and module.__name__ in PEER_PACKAGES:
            self._finder._warn_once(module.__name__, stacklevel=2)  # the import statement
        with self._finder.seeing(self._views):
            self._loader.exec_module(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def __repr__(self) -> str:
        return f"<greenpatch peer loader for {self._loader!r}>"


_finder: _PeerFinder | None = None


def install(registry: Registry) -> None:
    """Put the peer finder first in ``sys.meta_path`` (once); ``patch_all`` calls it."""
    global _finder
    if _finder is None:
        _finder = _PeerFinder(registry)
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    for peer in PEER_PACKAGES:
        if peer in sys.modules:
            _finder._warn_once(peer, stacklevel=3)  # patch_all()'s caller


def installed() -> bool:
    return _finder is not None and _finder in sys.meta_path


def uninstall() -> None:
    """Take the finder out of ``sys.meta_path`` (for tests)."""
    if _finder is not None and _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
