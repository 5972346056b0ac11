"""Green pyOpenSSL: a ``Connection`` over a green socket waits on the hub.

The problem
-----------
``OpenSSL.SSL.Connection(context, sock)`` hands the socket's descriptor to
OpenSSL (``SSL_set_fd``), and OpenSSL then reads and writes that descriptor
itself, in C.  A green socket keeps its descriptor blocking while its timeout is
None, as the standard library does (see ``green/socket.py``), so a handshake, a
read or a write of such a Connection blocked the hub's whole thread: no other
greenlet ran until the peer answered, and when the peer was a server in a
patched thread of the same process it never did.  urllib3 with pyOpenSSL
injected (``urllib3.contrib.pyopenssl``) hung that way on its first HTTPS
request to its own test servers.

What we do
----------
The I/O methods of the ``Connection`` class (``do_handshake``, ``send`` and
``write``, ``sendall``, ``recv`` and ``read``, ``recv_into``, ``shutdown``) are
wrapped in place.  When the Connection's socket is a green socket whose
timeout is None -- a blocking call, as the caller asked -- each OpenSSL call
runs with the descriptor non-blocking for that one call (as the green socket's
``accept`` and ``connect`` do), and a ``WantReadError``/``WantWriteError`` waits
on the hub for the direction OpenSSL names, then retries.  The caller sees the
blocking call it made; the other greenlets run meanwhile.

Everything else is pyOpenSSL's own call, unchanged: a socket with a timeout
already has a non-blocking descriptor, and the want-errors reach the caller as
they do unpatched (urllib3's ``WrappedSocket`` waits for them with ``select``,
which is green); a Connection over memory BIOs has no socket; a socket made
before patching is not green and blocks as it always did.

``sendall`` is re-written rather than retried: pyOpenSSL's loops over
``SSL_write`` in C, and a want-error half-way would lose the count of what was
already sent.  Ours loops over the cooperative ``send`` (pyOpenSSL's contexts
enable partial writes and moving write buffers, so each retry may resume).

How it is installed
-------------------
pyOpenSSL is optional and costly to import, so patching does not import it.
``install()`` (the ``ssl`` patch's ``after`` hook calls it) wraps the class at
once when ``OpenSSL.SSL`` is already imported, and otherwise as soon as the
module's code has run (``patcher/_import_hook.py``).  The
class object stays the same (``isinstance`` checks and subclasses keep
working; a subclass's override that calls ``super()`` gets the wrapper).

Rejected, with reasons:

* Keeping the descriptor non-blocking for good once a Connection holds it
  (gevent's sockets always are, so pyOpenSSL raises want-errors there): a
  caller that made a blocking socket would get ``WantReadError`` from a call
  it expects to block.
* Importing ``OpenSSL.SSL`` in ``patch_all`` to wrap it eagerly: an import of a
  large package nobody asked for, in every patched process.
* Replacing ``OpenSSL.SSL.Connection`` with a subclass: names imported before
  the patch, and pickled or registered classes, would keep the old one.

Limits: ``registry.unpatch("ssl")`` does not unwrap; ``DTLSv1_listen`` and
``renegotiate`` are left as they are (no blocking I/O of their own).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

from greenpatch.hub.io import READ, WRITE
from greenpatch.patcher import _import_hook
from greenpatch.patcher.green import socket as _gsocket

__all__ = ["TARGET", "install", "make_cooperative"]

#: The module whose ``Connection`` class is made cooperative.
TARGET = "OpenSSL.SSL"
#: Methods that may wait for the peer, each retried as a whole after a want-error.
_RETRIED = ("do_handshake", "send", "write", "recv", "read", "recv_into", "shutdown")
#: SSL_write takes an int: pyOpenSSL's own bound for one call.
_MAX_WRITE = 2147483647
_MARK = "_greenpatch_cooperative"


def _blocking_socket(connection: Any) -> Any:
    """The Connection's green socket when the call should block cooperatively, else None."""
    # Read from the instance's dict: Connection.__getattr__ forwards unknown
    # names to the socket, and a Connection half-made by a failed __init__ has none.
    sock = getattr(connection, "__dict__", {}).get("_socket")
    if isinstance(sock, _gsocket.socket) and sock.gettimeout() is None:
        return sock
    return None


def _retried(
    method: Callable[..., Any],
    want_read: type[BaseException],
    want_write: type[BaseException],
) -> Callable[..., Any]:
    @functools.wraps(method)
    def cooperative(self: Any, *args: Any, **kwargs: Any) -> Any:
        sock = _blocking_socket(self)
        if sock is None:
            return method(self, *args, **kwargs)
        call = functools.partial(method, self, *args, **kwargs)
        while True:
            try:
                return sock._nonblocking_call(call)
            except want_read:
                way = READ
            except want_write:
                way = WRITE
            sock._io_wait(way)

    return cooperative


def _sendall(method: Callable[..., Any], module: ModuleType) -> Callable[..., Any]:
    to_bytes: Any = getattr(module, "_text_to_bytes_and_warn", None)

    @functools.wraps(method)
    def sendall(self: Any, buf: Any, flags: int = 0) -> int:
        if _blocking_socket(self) is None:
            return method(self, buf, flags)  # type: ignore[no-any-return]
        if isinstance(buf, str) and to_bytes is not None:
            buf = to_bytes("buf", buf)  # pyOpenSSL's deprecation warning, in its words
        with memoryview(buf) as view:
            data = view if view.format == "B" else view.cast("B")
            total = 0
            while total < len(data):
                # The same slice object on every retry of one send: OpenSSL
                # wants a retried write to present the same bytes.
                total += self.send(data[total : total + _MAX_WRITE], flags)
            return total

    return sendall


def make_cooperative(module: ModuleType) -> bool:
    """Wrap the I/O methods of ``module.Connection`` (``OpenSSL.SSL``); False if
    they already were or the module has no such class."""
    connection = getattr(module, "Connection", None)
    if not isinstance(connection, type) or connection.__dict__.get(_MARK):
        return False
    want_read, want_write = module.WantReadError, module.WantWriteError
    for name in _RETRIED:
        method = connection.__dict__.get(name)
        if method is not None:
            setattr(connection, name, _retried(method, want_read, want_write))
    method = connection.__dict__.get("sendall")
    if method is not None:
        connection.sendall = _sendall(method, module)  # type: ignore[attr-defined]
    setattr(connection, _MARK, True)
    return True


def install() -> None:
    """Make pyOpenSSL's ``Connection`` cooperative now if it is imported, else as
    soon as it is (a re-import, after ``sys.modules`` lost it, is wrapped too)."""
    _import_hook.after_import(TARGET, _make_cooperative_on_import)


def _make_cooperative_on_import(module: ModuleType) -> None:
    make_cooperative(module)
