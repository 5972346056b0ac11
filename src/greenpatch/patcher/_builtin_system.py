"""Built-in registry rows for the ssl, subprocess, os and signal twins.

Imported by ``import greenpatch``: nothing here may import ``ssl`` or the green
modules at module level (the hooks import them when they run).
"""

from __future__ import annotations

from types import ModuleType

from greenpatch.patcher.registry import PatchSpec, Registry

_GREEN = "greenpatch.patcher.green."


def _install_green_sslsocket(target: ModuleType, registry: Registry) -> None:
    """Point ``ssl.SSLContext.sslsocket_class`` at the green ``SSLSocket``.

    Swapping a module name cannot do this: contexts find their socket class
    through the class attribute, and ``ssl.SSLContext`` itself must stay the
    same object (subclasses made before patching would recurse, see
    ``green/ssl.py``).  ``registry.unpatch("ssl")`` does not undo it.

    pyOpenSSL's ``Connection`` does its TLS I/O on the socket's descriptor in
    C: it is made cooperative too, when ``OpenSSL.SSL`` is imported (see
    ``green/pyopenssl.py``; patching does not import it).
    """
    from greenpatch.patcher.green import pyopenssl as green_pyopenssl
    from greenpatch.patcher.green import ssl as green_ssl

    green_ssl.install(target)
    green_pyopenssl.install()


def _take_over_sigint(target: ModuleType, registry: Registry) -> None:
    """Route the default SIGINT handler through the green trampoline (see
    ``green/signal.py``, ``take_over_sigint``)."""
    from greenpatch.patcher.green import signal as green_signal

    green_signal.take_over_sigint()


SYSTEM_SPECS: tuple[PatchSpec, ...] = (
    PatchSpec(
        name="os",
        target="os",
        green=_GREEN + "os",
        flag="os",
        description=(
            "os.fork watches the child on the main hub; os.waitpid/os.wait wait cooperatively "
            "and find the statuses libev's child watchers reaped; os.read/os.write (readv, "
            "writev) on pipes, terminals and sockets wait on the hub"
        ),
    ),
    PatchSpec(
        name="ssl",
        target="ssl",
        green=_GREEN + "ssl",
        flag="ssl",
        names=(),
        after=_install_green_sslsocket,
        description=(
            "SSLContext.wrap_socket (and ssl.wrap_socket) make cooperative SSL sockets: "
            "handshake, read, write, unwrap wait on the hub; so do pyOpenSSL's "
            "Connection calls over a blocking green socket"
        ),
    ),
    PatchSpec(
        name="subprocess",
        target="subprocess",
        green=_GREEN + "subprocess",
        flag="subprocess",
        description=(
            "Popen with cooperative wait, communicate and pipes (run, call, check_output "
            "use it); communicate's selector waits on the hub"
        ),
    ),
    PatchSpec(
        name="signal",
        target="signal",
        green=_GREEN + "signal",
        flag="signal",
        after=_take_over_sigint,
        description=(
            "signal.signal handlers run between bytecodes as in CPython, in the main "
            "greenlet or, when the hub has the signal, in a greenlet of their own; "
            "getsignal reports them; SIG_DFL/SIG_IGN/SIGCHLD stay the stdlib's"
        ),
    ),
)
