"""The patch registry: what can be patched, what is patched, and the originals.

Patches are data.  A ``PatchSpec`` says: this target module gets these names from
that green module, under this ``patch_all`` flag.  The green module itself
declares what it implements (``__implements__``) and the module it targets
(``__target__``); a spec may narrow that to a subset (the ``dns`` patch takes
only the resolver functions of the green socket module).  Before replacing a
name, the registry records the original, so ``original("socket", "socket")``
always reaches the stdlib object.

Green modules are imported only when their patch is applied, so importing the
registry costs nothing but this file.

Rejected: gevent-style module magic (green modules that copy the target's
namespace into themselves at import and patch by walking ``__implements__``
lists scattered in ``__init__``).  Here one table lists every patch, and
plugins add rows to it.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from greenpatch.patcher import _import_hook

__all__ = [
    "MISSING",
    "PatchError",
    "PatchSpec",
    "Registry",
    "UnknownPatchError",
]


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


#: Recorded as the "original" of a name the target module did not have.
MISSING: Any = _Missing()


class PatchError(RuntimeError):
    """A patch could not be applied."""


class UnknownPatchError(KeyError, PatchError):
    """A patch name that the registry does not know."""

    def __str__(self) -> str:
        return str(self.args[0])


class PatchSpec:
    """One row of the registry.

    ``names=None`` means "everything the green module's ``__implements__``
    lists"; ``()`` means none (a spec that only removes names).  ``remove``
    names are deleted from the target (e.g. ``select.epoll`` under
    ``aggressive``).  ``after`` runs once the names are in place, with the
    target module and the registry (used for work that swapping names cannot do,
    such as replacing locks that already exist).

    ``on_import=True`` is for optional libraries (the shipped plugins for
    psycopg2, psycopg and pyzmq): patching does not import the target.  When it
    is not imported yet, the patch is *armed*: it is in force (``is_patched``),
    and its names are swapped, and ``after`` run, as soon as the target's own
    code has run -- before the ``import`` that loaded it returns.  A library
    that is not installed is never imported, so the patch costs nothing.
    """

    # A hand-written value class rather than a frozen dataclass: importing
    # dataclasses (and the inspect, ast, dis and tokenize it pulls in) cost
    # more than the rest of the registry, on the start-up path of every
    # patched program.
    __slots__ = (
        "after",
        "aggressive_only",
        "description",
        "flag",
        "green",
        "name",
        "names",
        "on_import",
        "remove",
        "target",
    )
    name: str
    target: str
    green: str
    flag: str
    names: tuple[str, ...] | None
    remove: tuple[str, ...]
    aggressive_only: bool
    description: str
    on_import: bool
    after: Callable[[ModuleType, Registry], None] | None

    def __init__(
        self,
        name: str,
        target: str,
        green: str,
        flag: str,
        names: tuple[str, ...] | None = None,
        remove: tuple[str, ...] = (),
        aggressive_only: bool = False,
        description: str = "",
        on_import: bool = False,
        after: Callable[[ModuleType, Registry], None] | None = None,
    ) -> None:
        values = {
            "name": name,
            "target": target,
            "green": green,
            "flag": flag,
            "names": None if names is None else tuple(names),
            "remove": tuple(remove),
            "aggressive_only": aggressive_only,
            "description": description,
            "on_import": on_import,
            "after": after,
        }
        for field_name, value in values.items():
            object.__setattr__(self, field_name, value)

    def _key(self) -> tuple[Any, ...]:
        # ``after`` does not take part in equality (a hook is behaviour, not identity).
        return (
            self.name,
            self.target,
            self.green,
            self.flag,
            self.names,
            self.remove,
            self.aggressive_only,
            self.description,
            self.on_import,
        )

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"PatchSpec is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"PatchSpec is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatchSpec):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        shown = ", ".join(f"{field}={getattr(self, field)!r}" for field in _SPEC_FIELDS)
        return f"PatchSpec({shown})"


_SPEC_FIELDS = (
    "name",
    "target",
    "green",
    "flag",
    "names",
    "remove",
    "aggressive_only",
    "description",
    "on_import",
    "after",
)


class Registry:
    """Applies ``PatchSpec`` rows and remembers every original it replaced."""

    def __init__(self) -> None:
        self._specs: dict[str, PatchSpec] = {}
        self._originals: dict[tuple[str, str], Any] = {}
        self._applied: dict[str, PatchSpec] = {}
        #: patch name -> {attr: what the target held before that patch} (MISSING: nothing)
        self._swapped: dict[str, dict[str, Any]] = {}
        #: on_import patches waiting for their target's import
        self._armed: dict[str, PatchSpec] = {}
        self._import_callbacks: dict[str, Callable[[ModuleType], None]] = {}
        self._lock = threading.RLock()

    # -- the table ------------------------------------------------------------
    def register(self, spec: PatchSpec, replace: bool = False) -> None:
        if not isinstance(spec, PatchSpec):
            raise TypeError(f"expected a PatchSpec, got {spec!r}")
        if spec.name in self._specs and not replace:
            raise PatchError(f"a patch named {spec.name!r} is already registered")
        self._specs[spec.name] = spec

    def spec(self, name: str) -> PatchSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs))
            raise UnknownPatchError(f"unknown patch {name!r}; known patches: {known}") from None

    @property
    def specs(self) -> list[PatchSpec]:
        return list(self._specs.values())

    def specs_for_flag(self, flag: str) -> list[PatchSpec]:
        return [spec for spec in self._specs.values() if spec.flag == flag]

    # -- applying -------------------------------------------------------------
    def green_names(self, spec: PatchSpec) -> tuple[str, ...]:
        if spec.names is not None:
            return spec.names
        green = importlib.import_module(spec.green)
        implements = getattr(green, "__implements__", None)
        if not implements:
            raise PatchError(f"{spec.green} declares no __implements__ list")
        return tuple(implements)

    def patch(self, name: str) -> bool:
        """Apply one patch; returns False when it was already in force.

        All or nothing: every name is checked before any is swapped, and a
        failure while swapping or in the ``after`` hook puts back what this
        call changed before ``PatchError`` propagates (chained to the cause).
        An ``on_import`` patch whose target is not imported is armed instead
        (see ``PatchSpec``); its failure, later, fails that ``import``.
        """
        spec = self.spec(name)
        with self._lock:
            if name in self._applied or name in self._armed:
                return False
            if spec.on_import and spec.target not in sys.modules:
                self._armed[name] = spec
                _import_hook.after_import(spec.target, self._on_import_callback(name))
                return True
            self._apply(spec, importlib.import_module(spec.target))
        return True

    def _on_import_callback(self, name: str) -> Callable[[ModuleType], None]:
        callback = self._import_callbacks.get(name)
        if callback is None:

            def callback(module: ModuleType) -> None:
                with self._lock:
                    spec = self._armed.pop(name, None) or self._applied.pop(name, None)
                    if spec is None:
                        return  # unpatched meanwhile
                    self._swapped.pop(name, None)  # a re-import: a new module object
                    self._apply(spec, module)

            self._import_callbacks[name] = callback
        return callback

    def _apply(self, spec: PatchSpec, target: ModuleType) -> None:
        name = spec.name
        green = importlib.import_module(spec.green)
        declared = getattr(green, "__target__", spec.target)
        if declared != spec.target:
            raise PatchError(
                f"{spec.green} targets {declared!r}, but patch {name!r} applies it to "
                f"{spec.target!r}"
            )
        names = self.green_names(spec)
        missing = [attr for attr in names if not hasattr(green, attr)]
        if missing:
            listed = ", ".join(repr(attr) for attr in missing)
            raise PatchError(f"{spec.green} declares {listed} but does not define it")
        # What this patch finds in place, name by name: unpatch() and a
        # rollback put exactly that back.
        swapped: dict[str, Any] = {}
        originals_before = dict(self._originals)
        try:
            for attr in names:
                swapped[attr] = previous = getattr(target, attr, MISSING)
                self._originals.setdefault((spec.target, attr), previous)
                setattr(target, attr, getattr(green, attr))
            for attr in spec.remove:
                if hasattr(target, attr) and attr not in swapped:
                    swapped[attr] = previous = getattr(target, attr)
                    self._originals.setdefault((spec.target, attr), previous)
                    delattr(target, attr)
            self._applied[name] = spec
            self._swapped[name] = swapped
            if spec.after is not None:
                spec.after(target, self)
        except BaseException as exc:
            self._applied.pop(name, None)
            self._swapped.pop(name, None)
            _restore(target, swapped)
            self._originals = originals_before
            if not isinstance(exc, Exception):
                raise
            raise PatchError(f"patch {name!r} failed and was rolled back: {exc}") from exc

    def unpatch(self, name: str) -> bool:
        """Put back what one patch replaced (for tests; patching is meant to be for good)."""
        with self._lock:
            if self._armed.pop(name, None) is not None:
                _import_hook.cancel(self.spec(name).target, self._on_import_callback(name))
                return True
            spec = self._applied.pop(name, None)
            if spec is None:
                return False
            if spec.on_import:
                _import_hook.cancel(spec.target, self._on_import_callback(name))
            _restore(sys.modules[spec.target], self._swapped.pop(name))
            return True

    # -- questions --------------------------------------------------------------
    def is_patched(self, name: str) -> bool:
        self.spec(name)  # unknown names are an error, not False
        return name in self._applied or name in self._armed

    def is_armed(self, name: str) -> bool:
        """Whether ``name`` is an ``on_import`` patch waiting for its target's import."""
        self.spec(name)
        return name in self._armed

    def patched(self) -> list[str]:
        return [*self._applied, *self._armed]

    def original(self, module: str, attr: str) -> Any:
        """The object ``module.attr`` had before any patch replaced it."""
        key = (module, attr)
        if key in self._originals:
            value = self._originals[key]
            if value is MISSING:
                raise AttributeError(f"module {module!r} had no attribute {attr!r} before patching")
            return value
        return getattr(importlib.import_module(module), attr)

    def originals(self) -> dict[tuple[str, str], Any]:
        return dict(self._originals)

    def wrap_original(self, module: str, attr: str, wrap: Callable[[Any], Any]) -> bool:
        """Record ``wrap(original)`` as the original of ``module.attr``; False if none is.

        For tools that must see every call, including those made through
        ``original()``: the compat harness's network guard wraps the saved
        resolvers this way.  Unpatching then puts the wrapper back in the module,
        which is what such a tool wants (the wrapper calls the original).
        """
        key = (module, attr)
        value = self._originals.get(key, MISSING)
        if value is MISSING:
            return False
        wrapped = self._originals[key] = wrap(value)
        for applied, swapped in self._swapped.items():
            if self._applied[applied].target == module and swapped.get(attr, MISSING) is value:
                swapped[attr] = wrapped
        return True

    def replaced_objects(self, specs: Iterable[PatchSpec]) -> dict[int, tuple[str, str]]:
        """id(original object) -> (module, attr) for what ``specs`` would replace."""
        found: dict[int, tuple[str, str]] = {}
        for spec in specs:
            target = sys.modules.get(spec.target)
            if target is None:
                continue
            for attr in self.green_names(spec):
                value = getattr(target, attr, None)
                if value is not None and not isinstance(value, (int, float, str, bytes, bool)):
                    found[id(value)] = (spec.target, attr)
        return found


def _restore(target: ModuleType, swapped: dict[str, Any]) -> None:
    """Put ``swapped`` (attr -> previous value, MISSING: none) back into ``target``."""
    for attr, previous in swapped.items():
        if previous is MISSING:
            if hasattr(target, attr):
                delattr(target, attr)
        else:
            setattr(target, attr, previous)
