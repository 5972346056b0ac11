"""The built-in rows of the patch registry (the data; ``registry.py`` is the mechanism)."""

from __future__ import annotations

from types import ModuleType

from greenpatch.patcher._builtin_system import SYSTEM_SPECS
from greenpatch.patcher._builtin_threads import THREAD_SPECS
from greenpatch.patcher.registry import PatchSpec, Registry

_GREEN = "greenpatch.patcher.green."


def _green_poll_selector(selectors: ModuleType, registry: Registry) -> None:
    """``PollSelector`` bound ``select.poll`` when its class was made; point it at the
    green one.  The class object itself is kept, so modules that chose it at import
    (``socketserver``'s ``_ServerSelector``) get the fix too."""
    from greenpatch.patcher.green import select as green_select

    if hasattr(selectors, "PollSelector"):
        selectors.PollSelector._selector_cls = green_select.poll
    # Likewise EpollSelector and select.epoll (on systems that have it).
    if hasattr(selectors, "EpollSelector") and hasattr(green_select, "epoll"):
        selectors.EpollSelector._selector_cls = green_select.epoll


#: The order in which patch_all() applies flags: the lowest layers first, so that
#: a later twin (ssl, subprocess) finds the green socket/threading in place.
PATCH_ORDER = (
    "os",
    "time",
    "thread",
    "socket",
    "dns",
    "select",
    "ssl",
    "subprocess",
    "signal",
    "queue",
)

_CORE_SPECS: tuple[PatchSpec, ...] = (
    PatchSpec(
        name="time",
        target="time",
        green=_GREEN + "time",
        flag="time",
        description="time.sleep yields to the hub",
    ),
    PatchSpec(
        name="socket",
        target="socket",
        green=_GREEN + "socket",
        flag="socket",
        names=("socket", "create_connection", "create_server", "socketpair", "fromfd"),
        description="cooperative socket class and constructors",
    ),
    PatchSpec(
        name="dns",
        target="socket",
        green=_GREEN + "socket",
        flag="dns",
        names=("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo"),
        description="name resolution on the hub's threadpool",
    ),
    PatchSpec(
        name="select",
        target="select",
        green=_GREEN + "select",
        flag="select",
        description="select.select, select.poll and select.epoll on the hub",
    ),
    PatchSpec(
        name="select_aggressive",
        target="select",
        green=_GREEN + "select",
        flag="select",
        names=(),
        remove=("epoll", "kqueue", "devpoll"),
        aggressive_only=True,
        description="remove what cannot be made cooperative (epoll, kqueue, devpoll)",
    ),
    PatchSpec(
        name="selectors",
        target="selectors",
        green=_GREEN + "selectors",
        flag="select",
        description="selectors.DefaultSelector built on the hub; PollSelector on the green poll",
        after=_green_poll_selector,
    ),
    PatchSpec(
        name="selectors_aggressive",
        target="selectors",
        green=_GREEN + "selectors",
        flag="select",
        names=(),
        remove=("EpollSelector", "KqueueSelector", "DevpollSelector"),
        aggressive_only=True,
        description="remove the selectors built on epoll, kqueue and devpoll",
    ),
)

BUILTIN_SPECS: tuple[PatchSpec, ...] = _CORE_SPECS + THREAD_SPECS + SYSTEM_SPECS
