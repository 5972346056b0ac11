"""The ``psycopg2`` plugin: libpq's waits go through the hub.

(Work in progress: the wait callback lands with its tests.)
"""

from __future__ import annotations

from types import ModuleType

from greenpatch.patcher.api import PluginAPI
from greenpatch.patcher.registry import PatchSpec, Registry


def _install(target: ModuleType, registry: Registry) -> None:
    """Install the cooperative wait callback (not yet written)."""


SPEC = PatchSpec(
    name="psycopg2",
    target="psycopg2",
    green=__name__,
    flag="psycopg2",
    names=(),
    on_import=True,
    after=_install,
    description="psycopg2's queries wait on the hub (a libpq wait callback)",
)


def register(api: PluginAPI) -> None:
    api.register(SPEC)
