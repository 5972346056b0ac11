"""``greenpatch.pool``: ``Group`` and ``Pool``, as ``gevent.pool``."""

from greenpatch.hub.pool import Group, Pool, PoolFull

__all__ = ["Group", "Pool", "PoolFull"]
