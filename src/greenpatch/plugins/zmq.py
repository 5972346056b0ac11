"""The ``zmq`` plugin: ``import zmq`` after ``patch_all()`` gives the cooperative
``Context``, ``Socket``, ``Poller`` and ``select`` of ``greenpatch.zmq``."""

from __future__ import annotations

from greenpatch.patcher.api import PluginAPI
from greenpatch.patcher.registry import PatchSpec

SPEC = PatchSpec(
    name="zmq",
    target="zmq",
    green="greenpatch.zmq",
    flag="zmq",
    on_import=True,
    description="pyzmq's Context, Socket, Poller and select wait on the hub (greenpatch.zmq)",
)


def register(api: PluginAPI) -> None:
    api.register(SPEC)
