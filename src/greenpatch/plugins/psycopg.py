"""The ``psycopg`` plugin: sync psycopg 3 waits on the hub.

(Work in progress: the wait callback lands with its tests.)
"""

from __future__ import annotations

from types import ModuleType

from greenpatch.patcher.api import PluginAPI
from greenpatch.patcher.registry import PatchSpec, Registry


def _install(target: ModuleType, registry: Registry) -> None:
    """Install the cooperative wait callback (not yet written)."""


SPEC = PatchSpec(
    name="psycopg",
    target="psycopg",
    green=__name__,
    flag="psycopg",
    names=(),
    on_import=True,
    after=_install,
    description="psycopg's queries wait on the hub (its Python wait functions)",
)


def register(api: PluginAPI) -> None:
    api.register(SPEC)
