"""Greenlets outside tasks: ``spawn_raw`` and the module-level ``kill``.

A raw greenlet is a plain ``greenlet.greenlet`` whose parent is the hub: no
``Greenlet`` object, no links, no value (gevent's ``spawn_raw``).  ``kill``
takes a task or a raw greenlet, as gevent's does.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from greenlet import GreenletExit, getcurrent
from greenlet import greenlet as RawGreenlet

from greenpatch.hub.greenlet import Greenlet
from greenpatch.hub.hub import Hub, get_hub

__all__ = ["kill", "spawn_raw"]


def spawn_raw(function: Callable[..., Any], *args: Any, **kwargs: Any) -> RawGreenlet:
    """Run ``function`` in a plain ``greenlet.greenlet``, gevent's ``spawn_raw``.

    No ``Greenlet`` object, no links, no value: the cheapest fire-and-forget.  An
    exception it raises is reported like a task's and the loop goes on (a raw
    greenlet's parent is the hub, which must never receive it).
    """
    hub = get_hub()
    glet = RawGreenlet(_run_raw, hub)
    hub.loop.run_callback(glet.switch, hub, function, args, kwargs)
    return glet


def _run_raw(
    hub: Hub, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    try:
        function(*args, **kwargs)
    except GreenletExit:
        pass
    except BaseException:
        hub.handle_error(getcurrent(), *sys.exc_info())


def kill(glet: Any, exception: Any = GreenletExit) -> None:
    """Raise ``exception`` in ``glet`` without waiting (gevent's module-level ``kill``).

    ``glet`` is a ``Greenlet`` or a raw greenlet (from ``spawn_raw``); one that
    has finished is left alone.  Handy as a signal handler:
    ``signal_handler(SIGQUIT, kill, glet)``.
    """
    if isinstance(glet, Greenlet):
        glet.kill(exception, block=False)
        return
    if getattr(glet, "dead", True):
        return
    exc = exception() if isinstance(exception, type) else exception
    if glet is getcurrent():
        raise exc
    get_hub().loop.run_callback(_throw_raw, glet, exc)


def _throw_raw(glet: RawGreenlet, exc: BaseException) -> None:
    if not glet.dead:
        glet.throw(exc)
