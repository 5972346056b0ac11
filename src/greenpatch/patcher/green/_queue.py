"""Green ``_queue``: the C module's ``SimpleQueue`` is the green one.

``queue`` re-exports ``_queue.SimpleQueue``, and the ``queue`` patch swaps that
name; code that imports the C class itself (``from _queue import SimpleQueue``)
would still get a queue whose ``get()`` blocks the OS thread, every green
thread with it.  The class lives in ``green/queue.py``; this module only names
its target, as the registry wants one green module per target module.
``_queue.Empty`` is ``queue.Empty`` already and stays.
"""

from __future__ import annotations

from greenpatch.patcher.green.queue import SimpleQueue

__target__ = "_queue"
__implements__ = ["SimpleQueue"]
__all__ = ["SimpleQueue"]
