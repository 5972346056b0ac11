"""Cooperative pyzmq, for use without patching: ``from greenpatch.zmq import Context``.

The classes live in ``greenpatch.plugins._zmq`` (see there for how they wait);
``patch_all()`` puts these same objects into the ``zmq`` module when it is
imported (the ``zmq`` plugin, docs/plugins/zmq.md).  Importing this module
imports pyzmq.
"""

from __future__ import annotations

from greenpatch.plugins._zmq import Context, Poller, Socket, select

__all__ = ["Context", "Poller", "Socket", "select"]
