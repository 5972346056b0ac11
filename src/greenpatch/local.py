"""``greenpatch.local``: ``local``, greenlet-local data, as ``gevent.local``.

One set of attributes per greenlet task (``greenpatch.getcurrent()``), with
nothing patched.  It is the very class the patched ``threading.local`` is, so
code sees one behaviour whichever it uses.  Tasks run on reused worker
greenlets (docs/hub.md): keyed by worker, a local would leak one task's data
into the next, so it is keyed by task.
"""

from greenpatch.patcher.green._thread import _local as local

__all__ = ["local"]
