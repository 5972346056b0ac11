"""The network guard: inside a suite's test process, only loopback may be reached.

A library's test suite sometimes aims at the world (requests' TARPIT
10.255.255.1, ``http://doesnotexist.google.com``).  Here such a test must fail
at once with a clear error -- never send a packet, never hang on a black hole --
and the harness must be able to tell "needs network" from a real failure.

How: the socket methods that send to an address (``connect``, ``connect_ex``,
``sendto``, ``sendmsg``) and the resolver functions are wrapped, on every socket
class in play: the stdlib ``socket.socket`` and, in the patched run, the green
class that replaced it (which overrides those methods and calls the C ones
directly, so wrapping only the stdlib class would miss it).  A host name is
resolved before it is judged; a name is resolved at all only when it needs no
network (``localhost``, an IP literal, a name in the hosts file).

The resolver functions are wrapped in three places: ``socket`` (what code
calls), ``_socket`` (what the stdlib's own ``getaddrinfo`` and the hub's resolver
threads call, looked up at call time), and the patch registry's saved originals
(what ``greenpatch.patcher.original("socket", "gethostbyname")`` returns: the C
function itself, which nothing else could reach).

Refusals raise ``NetworkGuardError`` (a ``ConnectionRefusedError``, so code that
handles a refused connection handles this one) and are reported to the
``on_block`` callback, which the pytest plugin uses to mark the test.

This is a safety net against tests that aim at the world by accident, not a
sandbox against code that means to get out: ``_socket.socket`` (a C type, whose
methods cannot be replaced) used directly, ``ctypes``, or a subprocess all go
around it.  Rejected: a seccomp/namespace sandbox (needs privileges, Linux-only).
"""

from __future__ import annotations

import _socket
import functools
import ipaddress
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["NetworkGuardError", "install", "is_loopback_address"]

_HOSTS_FILE = Path("/etc/hosts")
_SEND_METHODS = ("connect", "connect_ex", "sendto", "sendmsg")
_RESOLVERS = ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr")
_INET_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class NetworkGuardError(ConnectionRefusedError):
    """A connection (or name lookup) to something other than loopback was refused."""


class NetworkGuardResolveError(NetworkGuardError, socket.gaierror):
    """A name lookup that would need the network; also a ``socket.gaierror``."""


_installed = False
_lock = threading.Lock()
_on_block: Callable[[str], None] | None = None


def is_loopback_address(host: str) -> bool:
    """Whether ``host`` is an IP literal in 127.0.0.0/8 or ::1 (or ::ffff:127.x)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@functools.lru_cache(maxsize=1)
def _hosts_file_names() -> frozenset[str]:
    """Names and addresses in the hosts file (resolving them needs no network)."""
    try:
        lines = _HOSTS_FILE.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return frozenset()
    names: set[str] = set()
    for line in lines:
        names.update(name.lower() for name in line.split("#", 1)[0].split())
    return frozenset(names)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _resolvable_offline(host: Any) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("idna", errors="replace")
    if not isinstance(host, str):
        return True  # let the real function raise its own TypeError
    name = host.strip().rstrip(".").lower()
    if name in ("", "localhost") or name.endswith(".localhost") or _is_ip_literal(name):
        return True
    return name in _hosts_file_names()


def _refuse(what: str, resolve: bool = False) -> NetworkGuardError:
    message = (
        f"greenpatch network guard: {what} is not loopback; the compat harness allows only "
        "127.0.0.0/8 and ::1 (pass --allow-network to lift this)"
    )
    callback = _on_block
    if callback is not None:
        try:
            callback(what)
        except Exception:  # the report must not hide the refusal itself
            pass
    if resolve:
        return NetworkGuardResolveError(socket.EAI_NONAME, message)
    return NetworkGuardError(message)


def _check_host(host: Any, what: str) -> None:
    if not _resolvable_offline(host):
        raise _refuse(f"name lookup of {host!r} ({what})", resolve=True)


def _check_address(sock: Any, address: Any) -> None:
    family = getattr(sock, "family", None)
    if family not in _INET_FAMILIES or not isinstance(address, tuple) or not address:
        return  # AF_UNIX and friends never leave the machine
    host, port = address[0], address[1] if len(address) > 1 else 0
    if isinstance(host, bytes):
        host = host.decode("idna", errors="replace")
    if not isinstance(host, str):
        return
    if host in ("", "localhost") or is_loopback_address(host):
        return
    if _is_ip_literal(host):
        raise _refuse(f"{host} port {port}")
    _check_host(host, f"connect to port {port}")
    # A name the hosts file knows: judge every address it stands for.
    for info in socket.getaddrinfo(host, port, family):
        resolved = str(info[4][0])
        if not is_loopback_address(resolved):
            raise _refuse(f"{host!r} -> {resolved} port {port}")


def _guard_method(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def guard_connect(self: Any, address: Any, *args: Any) -> Any:
        _check_address(self, address)
        return method(self, address, *args)

    def guard_sendto(self: Any, data: Any, *args: Any) -> Any:
        _check_address(self, args[-1] if args else None)  # sendto(data[, flags], address)
        return method(self, data, *args)

    def guard_sendmsg(self: Any, *args: Any, **kwargs: Any) -> Any:
        # sendmsg(buffers, ancdata=(), flags=0, address=None)
        address = kwargs.get("address", args[3] if len(args) > 3 else None)
        if address is not None:
            _check_address(self, address)
        return method(self, *args, **kwargs)

    guards = {"connect": guard_connect, "connect_ex": guard_connect, "sendto": guard_sendto}
    guarded = functools.wraps(method)(guards.get(name, guard_sendmsg))
    guarded.__greenpatch_guarded__ = True  # type: ignore[attr-defined]
    return guarded


def _guard_resolver(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    def guard_reverse(host: Any, *args: Any, **kwargs: Any) -> Any:
        # An IP literal is only answered offline when it is loopback or in the
        # hosts file; any other reverse lookup asks a DNS server.
        if (
            isinstance(host, str)
            and not is_loopback_address(host)
            and host.lower() not in _hosts_file_names()
        ):
            _check_host(host, "reverse lookup")
            if _is_ip_literal(host):
                raise _refuse(f"reverse lookup of {host!r}", resolve=True)
        return function(host, *args, **kwargs)

    def guard_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        _check_host(host, name)
        return function(host, *args, **kwargs)

    guard = guard_reverse if name == "gethostbyaddr" else guard_lookup
    guarded = functools.wraps(function)(guard)
    guarded.__greenpatch_guarded__ = True  # type: ignore[attr-defined]
    return guarded


def _socket_classes() -> list[type]:
    classes: list[type] = [socket.socket]
    try:
        from greenpatch.patcher import original

        stdlib_class = original("socket", "socket")
    except Exception:  # greenpatch not importable or socket never patched
        stdlib_class = socket.socket
    if stdlib_class not in classes:
        classes.append(stdlib_class)
    return classes


def install(on_block: Callable[[str], None] | None = None) -> None:
    """Guard this process's sockets and resolver (idempotent).

    Call it after ``patch_all`` (the pytest plugin does): the green classes must
    already be in ``socket`` to be wrapped.
    """
    global _installed, _on_block
    with _lock:
        _on_block = on_block
        if _installed:
            return
        _installed = True
        for cls in _socket_classes():
            for name in _SEND_METHODS:
                method = getattr(cls, name, None)
                if method is None or getattr(method, "__greenpatch_guarded__", False):
                    continue
                setattr(cls, name, _guard_method(name, method))
        for module in (socket, _socket):
            for name in _RESOLVERS:
                function = getattr(module, name)
                if not getattr(function, "__greenpatch_guarded__", False):
                    setattr(module, name, _guard_resolver(name, function))
        _guard_saved_originals()


def _guard_saved_originals() -> None:
    """Wrap the resolvers ``greenpatch.patcher.original`` hands out.

    The registry keeps the objects it replaced; for ``gethostbyname`` and friends
    that is the C function, a reference no attribute swap reaches, so the guard
    asks the registry to record guarded wrappers instead."""
    try:
        from greenpatch.patcher import registry
    except Exception:  # greenpatch's patcher not importable here: nothing saved
        return
    for name in _RESOLVERS:

        def guard(function: Any, name: str = name) -> Any:
            if not callable(function) or getattr(function, "__greenpatch_guarded__", False):
                return function
            return _guard_resolver(name, function)

        registry.wrap_original("socket", name, guard)
