"""Cooperative pyzmq without patching: ``import greenpatch.zmq as zmq``.

A drop-in for pyzmq's top-level namespace, as gevent's ``zmq.green`` is: every
public name of ``zmq`` (the constants, ``Frame``, ``Message``, ``ZMQError``,
``Again``, ``zmq_version``, ...) is here, with the cooperative ``Context``,
``Socket``, ``Poller``, ``select``, ``proxy``, ``proxy_steerable``, ``device``
(and ``monitored_queue``, which pyzmq keeps in ``zmq.devices``) in place of
pyzmq's blocking ones.  So code written for ``import zmq.green as zmq`` runs
with only that line changed; see docs/migrating-from-gevent.md.

The classes live in ``greenpatch.plugins._zmq`` and the devices in
``greenpatch.plugins._zmq_devices`` (see there for how they wait);
``patch_all()`` puts these same objects into the ``zmq`` module when it is
imported (the ``zmq`` plugin, docs/plugins/zmq.md).  Importing this module
imports pyzmq.

How the namespace is built: ``from zmq import *`` (pyzmq's ``__all__``, so type
checkers see every name with pyzmq's own types), then the cooperative names
over it, and a module ``__getattr__`` for the rest of ``zmq``'s attributes
(sub-modules such as ``zmq.devices`` or ``zmq.asyncio`` once imported, names
outside ``__all__``).  Rejected: copying ``vars(zmq)`` into this module at
import -- invisible to type checkers, and it would copy ``zmq.__name__``,
``__file__`` and friends too.
"""

from __future__ import annotations

from typing import Any

import zmq as _zmq
from zmq import *  # noqa: F403  -- the drop-in: pyzmq's whole public namespace

# ``X as X``: these re-exports replace what the star import brought.
from greenpatch.plugins._zmq import Context as Context
from greenpatch.plugins._zmq import Poller as Poller
from greenpatch.plugins._zmq import Socket as Socket
from greenpatch.plugins._zmq import select as select
from greenpatch.plugins._zmq_devices import device as device
from greenpatch.plugins._zmq_devices import monitored_queue as monitored_queue
from greenpatch.plugins._zmq_devices import proxy as proxy
from greenpatch.plugins._zmq_devices import proxy_steerable as proxy_steerable

_COOPERATIVE = [
    "Context",
    "Poller",
    "Socket",
    "device",
    "monitored_queue",
    "proxy",
    "proxy_steerable",
    "select",
]
__all__ = sorted(set(_zmq.__all__) | set(_COOPERATIVE))


def __getattr__(name: str) -> Any:
    """Whatever else ``zmq`` has (e.g. ``zmq.devices``, ``zmq.COPY_THRESHOLD``)."""
    try:
        return getattr(_zmq, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
