"""``greenpatch.event``: ``Event`` and ``AsyncResult``, as ``gevent.event``."""

from greenpatch.hub.event import AsyncResult, Event

__all__ = ["AsyncResult", "Event"]
