"""The ``zmq`` plugin: ``import zmq`` after ``patch_all()`` gives cooperative pyzmq.

pyzmq's ``Socket.send`` and ``recv`` block inside libzmq, out of the patched
``socket`` module's reach: under ``patch_all()`` a REQ client and a REP server
in two greenlets deadlock on the first ``recv``.  This row of the registry
swaps ``zmq.Context``, ``zmq.Socket``, ``zmq.Poller`` and ``zmq.select`` for the
cooperative ones of ``greenpatch.plugins._zmq`` (public as ``greenpatch.zmq``),
which wait for libzmq's ``ZMQ_FD`` on the hub; see that module for how.

The devices too: ``zmq.proxy``, ``zmq.proxy_steerable`` and ``zmq.device`` loop
in libzmq, holding the hub's thread; they are swapped for Python loops over the
cooperative poll (``greenpatch.plugins._zmq_devices``).  ``zmq.devices`` needs
rows of its own, one per module that holds a device function under its own
name: ``basedevice`` binds ``proxy`` at import (``from zmq import proxy``, for
``Device.run_device``), ``monitoredqueue`` and ``monitoredqueuedevice`` bind
``monitored_queue``, and the package re-exports both.  When ``zmq.devices`` is
imported after ``patch_all()`` those imports already find the cooperative
functions; the rows are for a ``zmq.devices`` imported before it, and they
record the originals, so ``original()`` and unpatching work as for any row.
Rejected: one row for ``zmq.devices`` whose ``after`` hook rewrote the
sub-modules -- what a hook changes, the registry cannot put back.

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
    names=("Context", "Socket", "Poller", "select", "proxy", "proxy_steerable", "device"),
    on_import=True,
    description=(
        "pyzmq's Context, Socket, Poller, select and proxy/device wait on the hub (greenpatch.zmq)"
    ),
)

#: The device functions (no ``__target__``: one module serves the four rows below).
DEVICES = "greenpatch.plugins._zmq_devices"

#: (row, module of zmq.devices, the names it holds)
_DEVICE_ROWS = (
    ("zmq_devices", "zmq.devices", ("proxy", "monitored_queue")),
    ("zmq_basedevice", "zmq.devices.basedevice", ("proxy",)),
    ("zmq_monitoredqueue", "zmq.devices.monitoredqueue", ("monitored_queue",)),
    ("zmq_monitoredqueuedevice", "zmq.devices.monitoredqueuedevice", ("monitored_queue",)),
)

DEVICE_SPECS = tuple(
    PatchSpec(
        name=row,
        target=target,
        green=DEVICES,
        flag="zmq",
        names=names,
        on_import=True,
        description=f"{target}'s {' and '.join(names)} wait on the hub (the zmq plugin)",
    )
    for row, target, names in _DEVICE_ROWS
)


def register(api: PluginAPI) -> None:
    api.register(SPEC)
    for spec in DEVICE_SPECS:
        api.register(spec)
