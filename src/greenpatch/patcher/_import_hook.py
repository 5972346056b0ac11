"""Run code right after a given module is imported, without importing it.

Patches of optional libraries (pyOpenSSL, psycopg2, pyzmq, ...) must not import
the library in every patched process: it may be absent, and it costs time and
memory when present but unused.  ``after_import(name, callback)`` calls
``callback(module)`` at once if ``name`` is in ``sys.modules``, and otherwise
as soon as the module's own code has run -- before the ``import`` statement
that loaded it returns, so the importer never sees the unpatched module.  A
module imported again (after ``sys.modules`` lost it) gets the callback again.

How: one finder at the front of ``sys.meta_path`` answers for the watched names
only.  It asks the other finders for the real spec and wraps the loader, so the
module is the library's own, loaded by its own loader; only ``exec_module`` is
followed by the callbacks.

Rejected: a post-import hook on ``builtins.__import__`` (every import of the
process would pay a Python call); polling ``sys.modules`` at switch points (the
importer would run unpatched code until the next switch).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["after_import", "cancel"]

Callback = Callable[[ModuleType], None]


class _Loader:
    """The module's own loader, followed by the callbacks for its name.  Every other
    attribute (``get_source``, resource readers, ...) is the wrapped loader's."""

    def __init__(self, loader: Any, finder: _Finder) -> None:
        self._loader = loader
        self._finder = finder

    def create_module(self, spec: Any) -> Any:
        create = getattr(self._loader, "create_module", None)
        return None if create is None else create(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        for callback in self._finder.callbacks(module.__name__):
            callback(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _Finder:
    """In ``sys.meta_path``: for a watched name, the spec the other finders give,
    with a loader that runs the callbacks; any other name is not ours."""

    def __init__(self) -> None:
        self._watched: dict[str, list[Callback]] = {}
        self._lock = threading.Lock()
        # Names being looked up right now: another finder may ask the whole
        # meta path in turn (greenpatch's own peer finder does), and must not
        # reach us again for the same name.
        self._finding: set[str] = set()

    def watch(self, name: str, callback: Callback) -> None:
        with self._lock:
            callbacks = self._watched.setdefault(name, [])
            if callback not in callbacks:
                callbacks.append(callback)

    def unwatch(self, name: str, callback: Callback) -> bool:
        with self._lock:
            callbacks = self._watched.get(name, [])
            if callback not in callbacks:
                return False
            callbacks.remove(callback)
            if not callbacks:
                del self._watched[name]
            return True

    def callbacks(self, name: str) -> list[Callback]:
        with self._lock:
            return list(self._watched.get(name, ()))

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self._watched or fullname in self._finding:
            return None
        self._finding.add(fullname)
        try:
            spec = None
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._finding.discard(fullname)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, self)
        return spec

    def invalidate_caches(self) -> None:
        pass


_finder = _Finder()


def after_import(name: str, callback: Callback) -> None:
    """Call ``callback(module)`` now if ``name`` is imported, and after every
    (re-)import of it from now on.  A callback's exception propagates to the
    ``import`` statement, which then fails (the module is not left half-patched
    in ``sys.modules``)."""
    _finder.watch(name, callback)
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    module = sys.modules.get(name)
    if module is not None:
        callback(module)


def cancel(name: str, callback: Callback) -> bool:
    """Stop calling ``callback`` for imports of ``name``; False if it was not watched."""
    return _finder.unwatch(name, callback)
