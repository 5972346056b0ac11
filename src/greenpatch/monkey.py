"""``greenpatch.monkey``: gevent's ``monkey`` module over greenpatch's patcher.

    from greenpatch import monkey
    monkey.patch_all()

``patch_all`` takes gevent's flags.  ``sys``, ``builtins`` and ``contextvars``
are accepted and do nothing, exactly as gevent does on Python 3 (where stdio
is left alone, ``__import__`` needs no lock and ``contextvars`` is already per
greenlet).  ``Event`` is honoured by the ``thread`` patch, which makes
``threading.Event`` cooperative together with the rest of ``threading``; it
cannot be left out alone, so ``Event=False`` with ``thread=True`` is refused.
``aggressive`` defaults to True, as in gevent.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from greenpatch.patcher import is_patched, original, patched, registry
from greenpatch.patcher import patch_all as _patch_all
from greenpatch.patcher.api import PATCH_ALL_FLAGS

__all__ = [
    "get_original",
    "is_anything_patched",
    "is_module_patched",
    "is_object_patched",
    "is_patched",
    "patch_all",
    "patch_builtins",
    "patch_dns",
    "patch_os",
    "patch_queue",
    "patch_select",
    "patch_signal",
    "patch_socket",
    "patch_ssl",
    "patch_subprocess",
    "patch_sys",
    "patch_thread",
    "patch_time",
]

_CORE_FLAGS = PATCH_ALL_FLAGS


def patch_all(
    socket: bool = True,
    dns: bool = True,
    time: bool = True,
    select: bool = True,
    thread: bool = True,
    os: bool = True,
    ssl: bool = True,
    subprocess: bool = True,
    sys: bool = False,
    aggressive: bool = True,
    Event: bool = True,
    builtins: bool = True,
    signal: bool = True,
    queue: bool = True,
    contextvars: bool = True,
    **plugin_flags: bool,
) -> bool:
    """gevent's ``patch_all``: make the standard library cooperative.

    Returns True, as gevent does when patching went ahead.  ``sys``,
    ``builtins`` and ``contextvars`` are no-ops on Python 3 (as in gevent).
    """
    if thread and not Event:
        raise ValueError(
            "patch_all(Event=False) with thread=True is not supported: greenpatch's "
            "threading patch makes threading.Event cooperative along with Lock and "
            "Condition (which Event is built on), so it cannot keep the blocking one. "
            "Pass thread=False to leave threading alone."
        )
    _patch_all(
        socket=socket,
        dns=dns,
        time=time,
        select=select,
        thread=thread,
        os=os,
        ssl=ssl,
        subprocess=subprocess,
        signal=signal,
        queue=queue,
        aggressive=aggressive,
        **plugin_flags,
    )
    return True


def _patch_only(flags: Iterable[str], aggressive: bool = False) -> None:
    """Apply the patches of ``flags`` and nothing else (plugins' flags are off)."""
    wanted = set(flags)
    every = set(_CORE_FLAGS) | {spec.flag for spec in registry.specs}
    switches = {flag: flag in wanted for flag in every}
    _patch_all(aggressive=aggressive, **switches)


def patch_socket(dns: bool = True, aggressive: bool = True) -> None:
    """Cooperative ``socket`` (and, with ``dns``, name resolution on the thread pool)."""
    _patch_only(["socket", "dns"] if dns else ["socket"], aggressive)


def patch_dns() -> None:
    """Resolve names on the thread pool (``socket.getaddrinfo`` and friends)."""
    _patch_only(["dns"])


def patch_time() -> None:
    """``time.sleep`` yields to the hub."""
    _patch_only(["time"])


def patch_select(aggressive: bool = True) -> None:
    """Cooperative ``select``/``selectors``; ``aggressive`` removes ``epoll`` and friends."""
    _patch_only(["select"], aggressive)


def patch_thread(
    threading: bool = True,
    _threading_local: bool = True,
    Event: bool = True,
    logging: bool = True,
    existing_locks: bool = True,
) -> None:
    """Threads become greenlets; locks, ``threading.local`` and ``Event`` cooperate.

    The parts cannot be switched off one by one: ``threading`` is built on
    ``_thread``, so a half-patched pair would mix real and green locks.
    """
    refused = [
        name
        for name, value in (
            ("threading", threading),
            ("_threading_local", _threading_local),
            ("Event", Event),
            ("logging", logging),
            ("existing_locks", existing_locks),
        )
        if not value
    ]
    if refused:
        raise ValueError(
            f"patch_thread({', '.join(f'{name}=False' for name in refused)}) is not "
            "supported: greenpatch patches _thread and threading together (one is built "
            "on the other). Leave threading unpatched by not calling patch_thread."
        )
    _patch_only(["thread"])


def patch_os() -> None:
    """``os.fork``, ``os.waitpid`` and pipe ``read``/``write`` cooperate."""
    _patch_only(["os"])


def patch_ssl() -> None:
    """Cooperative ``ssl`` sockets."""
    _patch_only(["ssl"])


def patch_subprocess() -> None:
    """``subprocess.Popen`` waits and pipes block only the calling greenlet."""
    _patch_only(["subprocess"])


def patch_signal() -> None:
    """``signal.signal`` handlers cooperate with the hub."""
    _patch_only(["signal"])


def patch_queue() -> None:
    """``queue.SimpleQueue`` (and ``_queue``) block only the calling greenlet."""
    _patch_only(["queue"])


def patch_sys(stdin: bool = True, stdout: bool = True, stderr: bool = True) -> None:
    """Does nothing, as gevent's ``patch_sys`` on Python 3 (stdio stays blocking)."""


def patch_builtins() -> None:
    """Does nothing, as gevent's ``patch_builtins`` on Python 3 (imports need no lock)."""


def is_anything_patched() -> bool:
    """Whether any patch is in force."""
    return bool(patched())


def is_module_patched(modname: str) -> bool:
    """Whether a patch of module ``modname`` (``"socket"``, ``"threading"``...) is in force.

    gevent's flag names work too (``"thread"``, ``"dns"``).
    """
    for name in patched():
        spec = registry.spec(name)
        if modname in (spec.target, spec.flag, spec.name):
            return True
    return False


def is_object_patched(modname: str, objname: str) -> bool:
    """Whether ``modname.objname`` is now something else than before patching."""
    if not is_module_patched(modname):
        return False
    current = getattr(importlib.import_module(modname), objname, None)
    try:
        return original(modname, objname) is not current
    except AttributeError:  # added by a patch: it had no original
        return True


def get_original(mod_name: str, item_name: str | Iterable[str]) -> Any:
    """The unpatched ``mod_name.item_name``; a list of them for a list of names."""
    if isinstance(item_name, str):
        return original(mod_name, item_name)
    return [original(mod_name, name) for name in item_name]
