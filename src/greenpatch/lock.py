"""``greenpatch.lock``: semaphores and locks for greenlets, as ``gevent.lock``."""

from greenpatch.hub.locks import BoundedSemaphore, Lock, RLock, Semaphore

__all__ = ["BoundedSemaphore", "Lock", "RLock", "Semaphore"]
