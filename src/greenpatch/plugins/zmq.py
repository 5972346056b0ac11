"""The ``zmq`` plugin: ``import zmq`` after ``patch_all()`` gives cooperative pyzmq.

pyzmq's ``Socket.send`` and ``recv`` block inside libzmq, out of the patched
``socket`` module's reach: under ``patch_all()`` a REQ client and a REP server
in two greenlets deadlock on the first ``recv``.  This row of the registry
swaps ``zmq.Context``, ``zmq.Socket``, ``zmq.Poller`` and ``zmq.select`` for the
cooperative ones of ``greenpatch.plugins._zmq`` (public as ``greenpatch.zmq``),
which wait for libzmq's ``ZMQ_FD`` on the hub; see that module for how.

Why two modules: this one is the plugin's entry point, loaded by every
``patch_all()``, so it must not import pyzmq (the cost of an import nobody asked
for, in every patched process, and an error where pyzmq is absent).  The
cooperative classes subclass pyzmq's, so their module imports it; the registry
imports that module only when the patch is applied -- once ``zmq`` itself has
been imported (``on_import=True``).

``patch_all(zmq=False)`` (``greenpatch run --without zmq``) leaves pyzmq's own,
blocking classes in place; ``greenpatch.zmq`` can still be used directly.
"""

from __future__ import annotations

from greenpatch.patcher.api import PluginAPI
from greenpatch.patcher.registry import PatchSpec

#: The module holding the cooperative classes (imported only once ``zmq`` is).
GREEN = "greenpatch.plugins._zmq"

SPEC = PatchSpec(
    name="zmq",
    target="zmq",
    green=GREEN,
    flag="zmq",
    names=("Context", "Socket", "Poller", "select"),
    on_import=True,
    description="pyzmq's Context, Socket, Poller and select wait on the hub (greenpatch.zmq)",
)


def register(api: PluginAPI) -> None:
    api.register(SPEC)
