"""Green ``subprocess``: ``Popen`` whose waits, pipes and ``communicate`` are cooperative.

Design
------
``Popen`` subclasses the stdlib class and replaces only what blocks:

* ``_wait`` (behind ``wait(timeout)``) never sleeps in ``waitpid``: it polls once
  (``waitpid(pid, WNOHANG)`` through the green ``os``, which knows the statuses
  libev reaped), then waits for the child's exit on the hub -- its child
  watcher in the main thread, a pidfd or a short sleep elsewhere -- and polls
  again.  ``TimeoutExpired`` is raised as the stdlib raises it.  The stdlib
  holds ``_waitpid_lock`` across a blocking ``waitpid``; a real lock held across
  a cooperative wait would deadlock the second greenlet that waits on the same
  process, so here the lock is only ever taken without blocking, around a poll.
* ``_internal_poll`` (``poll()``, ``__del__``) asks the green ``waitpid`` too: the
  stdlib's binds the original ``os.waitpid`` at import, which answers ECHILD --
  and so ``returncode = 0`` -- for a child libev already reaped.
* The pipe file objects are rebuilt over a raw layer that waits on the hub
  until the descriptor is ready before each read or write
  (``p.stdout.readline()``, ``for line in p.stdout``, ``p.stdin.write`` are
  cooperative), with the same buffering and text settings.  That also covers
  ``communicate()``'s single-pipe fast path, which calls ``stdout.read()``.
  The descriptors keep the stdlib's blocking mode: a pipe end is often handed
  on (``Popen(..., stdin=p1.stdout)``) and ``O_NONBLOCK`` would travel with it
  to the other process, whose reads would then fail with ``EAGAIN`` (see
  ``_fdio`` for how the calls avoid blocking without it).
* ``communicate`` with several pipes or a timeout is the stdlib's own
  ``_communicate`` (resumable after ``TimeoutExpired``, with partial output in
  the exception), made cooperative by patching ``subprocess._PopenSelector`` --
  the selector class it looks up at call time -- to the green ``HubSelector``.
  That also helps stdlib ``Popen`` objects made before patching.  A green
  ``Popen`` used without the patch runs the same function over a copy of the
  module's globals that answers ``_PopenSelector`` with ``HubSelector``, so it
  never blocks the thread either (the copy is made per call: it never goes
  stale, and a few microseconds are nothing beside a child process).  It reads and
  writes the descriptors itself after the selector said they are ready.
* The exit status is read through ``os.waitpid`` as the module ``os`` has it
  at call time (the green one after ``patch_all``; a test's or a debugger's
  replacement is honoured), the green one when ``os`` is not patched.

``run``, ``call``, ``check_call``, ``check_output``, ``getoutput`` are the stdlib's:
they look ``Popen`` up in the ``subprocess`` module at call time.

Rejected: reimplementing ``_communicate`` with one greenlet per pipe (gevent's
way): more code that would drift from the stdlib's timeout and resume semantics.
Not cooperative: the short read of the exec-error pipe in ``_execute_child``
(it lasts until the child has called ``exec``, milliseconds).
"""

from __future__ import annotations

import errno
import io
import os
import subprocess as _stdlib
import sys
import types
from time import monotonic
from typing import Any

from greenpatch.hub.hub import get_hub_if_exists
from greenpatch.hub.io import cancel_fd_waits, wait_read, wait_write
from greenpatch.patcher.green import _fdio
from greenpatch.patcher.green import os as _gos
from greenpatch.patcher.green.selectors import HubSelector

__target__ = "subprocess"
__implements__ = ["Popen", "_PopenSelector"]

_PopenSelector = HubSelector
TimeoutExpired = _stdlib.TimeoutExpired


class _CooperativePipe(io.RawIOBase):
    """A raw pipe end that waits on the hub instead of blocking the thread.

    Wraps (and owns) the ``FileIO`` the stdlib opened.  Each read or write
    waits until the descriptor is ready first (``_fdio``); the ``FileIO``
    returns None if the descriptor was made non-blocking and would block.
    """

    def __init__(self, raw: io.FileIO) -> None:
        super().__init__()
        self._raw = raw
        self._fd = raw.fileno()

    @property
    def name(self) -> Any:
        return self._raw.name

    @property
    def mode(self) -> str:
        return self._raw.mode

    def fileno(self) -> int:
        return self._fd

    def readable(self) -> bool:
        return self._raw.readable()

    def writable(self) -> bool:
        return self._raw.writable()

    def isatty(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        while True:
            _fdio.until_ready(self._fd, _fdio.POLLIN)
            count = self._raw.readinto(buffer)
            if count is not None:
                return count
            wait_read(self._fd)

    def write(self, data: Any) -> int:
        # All of it, as a write to a blocking pipe does (the green os.write's
        # loop): with bufsize=0 callers hold this object itself and rarely check
        # for a short write.
        if self._raw.closed:
            raise ValueError("I/O operation on closed file")
        with memoryview(data) as view, view.cast("B") as octets:
            total = octets.nbytes
            written = 0
            while written < total:
                try:
                    written += _fdio.write(self._fd, octets[written:])
                except BlockingIOError:  # made non-blocking by its user
                    wait_write(self._fd)
        return total

    def close(self) -> None:
        if self.closed:
            return
        hub = get_hub_if_exists()
        if hub is not None and not self._raw.closed:
            cancel_fd_waits(self._fd)  # before the number can be reused
        try:
            self._raw.close()
        finally:
            super().close()


def _cooperative(stream: Any, bufsize: int) -> Any:
    """The same stream (binary or text, buffered or not) over a ``_CooperativePipe``."""
    if stream is None:
        return None
    if isinstance(stream, io.TextIOWrapper):
        encoding, errors = stream.encoding, stream.errors
        line_buffering, write_through = stream.line_buffering, stream.write_through
        return io.TextIOWrapper(
            _cooperative(stream.detach(), bufsize),
            encoding=encoding,
            errors=errors,
            line_buffering=line_buffering,
            write_through=write_through,
        )
    if isinstance(stream, (io.BufferedReader, io.BufferedWriter)):
        kind = type(stream)
        raw = stream.detach()
        return kind(_cooperative(raw, bufsize), bufsize if bufsize > 1 else io.DEFAULT_BUFFER_SIZE)
    if isinstance(stream, io.FileIO):
        return _CooperativePipe(stream)
    return stream  # something we did not make: leave it alone


def _bufsize(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    # Popen(args, bufsize=-1, ...): the second positional parameter.
    value = kwargs.get("bufsize", args[1] if len(args) > 1 else -1)
    return int(value) if value is not None else -1


class Popen(_stdlib.Popen):  # type: ignore[type-arg]
    """``subprocess.Popen`` with cooperative ``wait``, ``communicate`` and pipes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bufsize = _bufsize(args, kwargs)
        self.stdin = _cooperative(self.stdin, bufsize)
        self.stdout = _cooperative(self.stdout, bufsize)
        self.stderr = _cooperative(self.stderr, bufsize)

    if sys.platform != "win32":

        def _execute_child(self, *args: Any, **kwargs: Any) -> None:
            super()._execute_child(*args, **kwargs)  # type: ignore[misc]
            # Watched from birth, so that its status survives libev reaping it
            # while another child watcher is active (see green/os.py).
            _gos.watch_child(self.pid)

    # -- waiting -----------------------------------------------------------------
    def _gp_collect(self) -> bool:
        """Poll once without blocking; True when ``returncode`` is known."""
        if self.returncode is not None:
            return True
        if not self._waitpid_lock.acquire(False):  # type: ignore[attr-defined]
            return False  # someone else is polling right now
        try:
            if self.returncode is not None:
                return True
            try:
                pid, status = _waitpid()(self.pid, _gos.WNOHANG)
            except ChildProcessError:
                # As the stdlib's _try_wait: reaped by someone else (or SIGCHLD
                # ignored); the status is lost.
                pid, status = self.pid, 0
            if pid == self.pid:
                self._handle_exitstatus(status)  # type: ignore[attr-defined]
                return True
            return False
        finally:
            self._waitpid_lock.release()  # type: ignore[attr-defined]

    def _wait(self, timeout: float | None) -> int:
        if self.returncode is not None:
            return self.returncode
        deadline = None if timeout is None else monotonic() + timeout
        delay = _gos._MIN_POLL
        while not self._gp_collect():
            remaining = None if deadline is None else deadline - monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutExpired(self.args, timeout)  # type: ignore[arg-type]
            _gos.wait_exited(self.pid, remaining, delay)
            delay = min(delay * 2, _gos._MAX_POLL)
        assert self.returncode is not None
        return self.returncode

    def _internal_poll(
        self,
        _deadstate: int | None = None,
        _waitpid: Any = _gos.waitpid,
        _WNOHANG: int = _gos.WNOHANG,
        _ECHILD: int = errno.ECHILD,
        **_ignored: Any,
    ) -> int | None:
        # Called by __del__, maybe at interpreter shutdown: only locals and
        # default arguments here, as in the stdlib.
        if self.returncode is None:
            if not self._waitpid_lock.acquire(False):  # type: ignore[attr-defined]
                return None
            try:
                if self.returncode is not None:
                    return self.returncode
                pid, status = _waitpid(self.pid, _WNOHANG)
                if pid == self.pid:
                    self._handle_exitstatus(status)  # type: ignore[attr-defined]
            except OSError as exc:
                if _deadstate is not None:
                    self.returncode = _deadstate
                elif exc.errno == _ECHILD:
                    self.returncode = 0
            finally:
                self._waitpid_lock.release()  # type: ignore[attr-defined]
        return self.returncode

    # -- communicating -------------------------------------------------------------
    def _communicate(self, input: Any, endtime: float | None, orig_timeout: float | None) -> Any:
        # The stdlib's own (its first flush goes through our cooperative pipe).
        if getattr(_stdlib, "_PopenSelector", None) is HubSelector:
            return super()._communicate(input, endtime, orig_timeout)  # type: ignore[misc]
        return _communicate_on_the_hub()(self, input, endtime, orig_timeout)


def _waitpid() -> Any:
    """``os.waitpid`` as ``os`` has it now, or the green one in place of the original."""
    current = os.waitpid
    return _gos.waitpid if current is _gos._real_waitpid else current


def _communicate_on_the_hub() -> Any:
    """The stdlib's ``Popen._communicate`` whose ``_PopenSelector`` is ``HubSelector``.

    Rejected: patching ``subprocess._PopenSelector`` for the duration of the call
    (another OS thread's stdlib ``Popen`` would meet a green selector meanwhile).
    """
    # The class this module subclassed, not ``subprocess.Popen``: after
    # patch_all that is this module's own class.
    original: Any = vars(Popen.__bases__[0])["_communicate"]
    namespace = {**vars(_stdlib), "_PopenSelector": HubSelector}
    return types.FunctionType(
        original.__code__, namespace, original.__name__, original.__defaults__, original.__closure__
    )
