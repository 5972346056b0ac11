"""Green ``ssl``: SSL sockets whose handshake, reads and writes wait on the hub.

How it works
------------
``SSLSocket`` here derives from the stdlib ``ssl.SSLSocket`` *and* the green
socket class::

    SSLSocket -> ssl.SSLSocket -> green socket.socket -> socket.socket -> _socket.socket

The stdlib ``SSLSocket`` calls ``super()`` for everything that is plain socket
work (``__init__`` inside ``_create``, ``connect``, ``accept``, unencrypted
``recv``/``send``, ``_real_close``), so with this MRO that work lands in the green
socket: the kernel descriptor stays non-blocking, the timeout lives on the
Python side, closing wakes waiters.  The C SSL object reads the *C-level*
timeout of the socket, which the green socket keeps at 0.0, so every OpenSSL
call is non-blocking and reports ``SSLWantReadError``/``SSLWantWriteError``.  The
methods below retry such calls after waiting on the hub, under one deadline per
call as the C code computes it, and raise ``socket.timeout`` with the stdlib's
messages ("The read operation timed out", "The write operation timed out",
"The handshake operation timed out").  With a timeout of 0.0 the want-errors
propagate, exactly as for a non-blocking stdlib SSL socket.

``read`` covers ``recv``/``recv_into`` and ``makefile`` (the stdlib routes them
through ``self.read``); ``send`` covers ``sendall`` and the ``sendfile`` fallback
(``_sendfile_use_send`` calls ``self.send``).
A call keeps the C SSL object it started with across its waits, so a
``shutdown()`` from another thread ends a blocked read with ``b""`` and a
blocked write with ``SSLEOFError``, as the stdlib's single blocking C call does
(see ``SSLSocket.read``).

How it is installed: ``SSLContext.sslsocket_class``
-------------------------------------------------------
``SSLContext.wrap_socket`` creates ``self.sslsocket_class._create(...)``, and the
stdlib lets that class attribute be set.  The ``ssl`` patch's ``after`` hook sets
it on ``ssl.SSLContext`` itself, so every context -- made before or after
patching, of ``ssl.SSLContext`` or of any subclass that does not set its own
``sslsocket_class`` -- wraps sockets with this class; so do ``ssl.wrap_socket``
(until 3.11) and ``get_server_certificate``, which go through a context.

Rejected, with reasons:

* Replacing ``ssl.SSLContext`` with a subclass (gevent's way).  Subclasses made
  before patching keep the old base, and property setters written as
  ``super(SSLContext, SSLContext).options.__set__(self, value)`` then resolve
  ``SSLContext`` to the new class and recurse forever (``requests``/``urllib3``
  imported before patching hit this).  We never replace the class object.
* Replacing the ``ssl.SSLSocket`` name.  ``SSLSocket._create`` calls
  ``super(SSLSocket, self).__init__`` with ``SSLSocket`` looked up in the
  module at call time: with our class there, that ``super`` would reach the
  stdlib ``SSLSocket.__init__``, which refuses to construct.  ``ssl.SSLSocket``
  stays the stdlib class; ours is a subclass, so ``isinstance`` checks hold.
* Copying the stdlib ``SSLSocket`` (gevent's ``_ssl3.py``): 700 lines that drift
  from every CPython release.

Limits: SSL sockets created before patching stay blocking; a context class
that sets its own ``sslsocket_class`` keeps it; ``SSLObject`` (memory BIOs, as
asyncio uses) does no I/O and needs nothing.
"""

from __future__ import annotations

import _socket as _c_socket
import socket as _socket
import ssl as _stdlib
from typing import Any

from greenpatch.hub.io import READ, WRITE, yield_after_end_of_stream
from greenpatch.patcher.green import socket as _gsocket

__target__ = "ssl"
#: No name is swapped (see the module docstring); the patch's ``after`` hook
#: points ``SSLContext.sslsocket_class`` at ``SSLSocket``.
__implements__: list[str] = []

_timeout_error = _socket.timeout
_READ_TIMEOUT = "The read operation timed out"
_WRITE_TIMEOUT = "The write operation timed out"
_READ_MESSAGES = (_READ_TIMEOUT, _READ_TIMEOUT)
_WRITE_MESSAGES = (_WRITE_TIMEOUT, _WRITE_TIMEOUT)
#: Replaced by the C module's exact wording on first use (``_handshake_timeout``).
_HANDSHAKE_TIMEOUT = "The handshake operation timed out"
_HANDSHAKE_MESSAGES = (_HANDSHAKE_TIMEOUT, _HANDSHAKE_TIMEOUT)
_handshake_message: str | None = None


def _handshake_timeout() -> str:
    """The stdlib's handshake-timeout message, word for word.

    ``_ssl.c`` prefixes this one message with its own source line
    ("_ssl.c:989: The handshake operation timed out"), which differs between
    CPython releases.  So the first time we need it, we provoke it: a real
    handshake on a C-level socketpair with a 1 ms timeout and no peer (about a
    millisecond, once).  Rejected: a table of line numbers per release.
    """
    global _handshake_message
    if _handshake_message is None:
        _handshake_message = _HANDSHAKE_TIMEOUT
        context = _stdlib.SSLContext(_stdlib.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = _stdlib.CERT_NONE
        ours, peer = _c_socket.socketpair()
        try:
            ours.settimeout(0.001)
            probe = _stdlib.SSLSocket._create(  # type: ignore[attr-defined]
                sock=ours, context=context, do_handshake_on_connect=False
            )
            with probe:
                probe.do_handshake()
        except _timeout_error as exc:
            if str(exc).endswith(_HANDSHAKE_TIMEOUT):
                _handshake_message = str(exc)
        except Exception:
            pass  # keep the plain wording
        finally:
            ours.close()
            peer.close()
    return _handshake_message


# mypy sees the stdlib stubs' differing signatures of methods neither base changes here.
class SSLSocket(_stdlib.SSLSocket, _gsocket.socket):  # type: ignore[misc]
    """A cooperative ``ssl.SSLSocket`` (made by ``SSLContext.wrap_socket``, not directly)."""

    _sslobj: Any  # the C SSL object (set by the stdlib's _create/_real_connect), or None
    suppress_ragged_eofs: bool  # set by the stdlib's _create

    _io_would_block = (
        _stdlib.SSLWantReadError,
        _stdlib.SSLWantWriteError,
        BlockingIOError,
    )

    _io_wants_write = (_stdlib.SSLWantWriteError,)
    _io_wants_read = (_stdlib.SSLWantReadError,)

    # OpenSSL reads and writes the descriptor itself, without MSG_DONTWAIT: a
    # TLS socket's descriptor stays non-blocking whatever its timeout (see the
    # green socket's ``_kernel_always_nonblocking``).
    _kernel_always_nonblocking = True

    # -- the calls that may want I/O -----------------------------------------------
    def do_handshake(self, block: bool = False) -> None:
        self._check_connected()  # type: ignore[attr-defined]
        timeout = self.gettimeout()
        if block and timeout == 0.0:
            timeout = None  # the stdlib blocks for this one call
        sslobj: Any = self._sslobj
        try:
            self._io_call(
                READ, 0, sslobj.do_handshake, timeout=timeout, messages=_HANDSHAKE_MESSAGES
            )
        except _timeout_error as exc:
            if exc.args == (_HANDSHAKE_TIMEOUT,):
                raise _timeout_error(_handshake_timeout()) from None
            raise

    # read, write and send take the C SSL object once, at the start of the call,
    # and retry on *that* object after each wait.  The stdlib's blocking call is
    # one C call holding its SSL object; ``shutdown()`` from another thread sets
    # ``_sslobj`` to None meanwhile, and the blocked read then sees the end of
    # the stream (b"").  Re-entering the stdlib method on each retry (as before)
    # looked ``_sslobj`` up again: a read woken by that shutdown raised
    # ValueError("Read on closed or unwrapped SSL socket."), and a send fell
    # through to the plain socket's send, putting unencrypted bytes on the wire
    # after ``shutdown(SHUT_RD)``.  Rejected: keeping a private reference on the
    # socket, cleared by an overridden ``shutdown``: per call is what CPython does
    # and needs no state.
    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        sslobj: Any = self._sslobj
        if sslobj is None:
            return super().read(len, buffer)  # the stdlib's ValueError, in its words
        data = self._io_call(READ, 0, self._read_from, sslobj, len, buffer, messages=_READ_MESSAGES)
        if not data and len:
            yield_after_end_of_stream()  # which a loop may read again
        return data

    def _read_from(self, sslobj: Any, len: int, buffer: Any) -> Any:
        """One OpenSSL read; a ragged end of stream is the end of stream, as in the stdlib."""
        try:
            if buffer is None:
                return sslobj.read(len)
            return sslobj.read(len, buffer)
        except _stdlib.SSLError as exc:
            # Want-errors carry their own codes and go back to _io_call.
            if exc.args[0] == _stdlib.SSL_ERROR_EOF and self.suppress_ragged_eofs:
                return b"" if buffer is None else 0
            raise

    def write(self, data: Any) -> int:
        sslobj: Any = self._sslobj
        if sslobj is None:
            return int(super().write(data))  # the stdlib's ValueError
        sent: int = self._io_call(WRITE, 0, sslobj.write, data, messages=_WRITE_MESSAGES)
        return sent

    def send(self, data: Any, flags: int = 0) -> int:
        sslobj: Any = self._sslobj
        if sslobj is None or flags:
            # Unencrypted: the green socket's send, which waits by itself and
            # never raises a want-error; with flags: the stdlib's ValueError.
            return int(super().send(data, flags))
        sent: int = self._io_call(WRITE, 0, sslobj.write, data, messages=_WRITE_MESSAGES)
        return sent

    def unwrap(self) -> Any:
        sslobj: Any = self._sslobj
        if not sslobj:
            raise ValueError("No SSL wrapper around " + str(self))
        # The C code names the direction that timed out; so do we.
        plain = self._io_call(READ, 0, sslobj.shutdown, messages=(_READ_TIMEOUT, _WRITE_TIMEOUT))
        self._sslobj = None
        return plain


# As the green socket does: repr() shows "<ssl.SSLSocket fd=...>" as unpatched.
SSLSocket.__module__ = "ssl"
SSLSocket.__qualname__ = "SSLSocket"


def install(ssl_module: Any) -> None:
    """Make every ``SSLContext`` wrap sockets with the green ``SSLSocket`` (the after hook)."""
    ssl_module.SSLContext.sslsocket_class = SSLSocket
