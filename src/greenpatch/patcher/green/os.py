"""Green ``os``: ``fork`` that keeps the hub sane, ``waitpid``/``wait`` that wait cooperatively.

``read``/``write``/``readv``/``writev`` on pipes, FIFOs, terminals and sockets
block only the calling greenlet (see ``_fdio``: the descriptor's mode is never
touched, readiness is asked first).

The trap: libev reaps children behind ``waitpid``'s back
--------------------------------------------------------
While at least one child watcher is active, libev's default loop handles
SIGCHLD by calling ``waitpid(-1)`` until no exited child is left, and hands each
status to the watchers of that pid (and to pid-0 watchers).  A child reaped that
way is gone for the kernel: a later ``waitpid(pid)`` fails with ECHILD, and the
stdlib ``subprocess`` turns ECHILD into ``returncode = 0``.  So every status libev
reaps for us must be kept until someone asks for it.

How this module copes (``_ChildReaper``):

* Children made by the green ``fork`` and the green ``Popen`` in the main thread
  are watched from birth by a per-pid child watcher (``ref=False``: a child
  nobody waits for does not keep the loop alive).  Its callback stores the
  status in a table; ``waitpid`` looks there first.  Per-pid watchers are exact.
* While any of our watchers is active, a pid-0 watcher records what libev reaps
  for pids nobody watches (an unrelated child, e.g. of an unpatched ``Popen``),
  so that ``waitpid`` still finds it.  Best effort: libev overwrites a watcher's
  ``rpid``/``rstatus`` when it reaps several children in one iteration, and the
  pid-0 watcher then only reports the last one.  Unclaimed strays expire after
  a minute (pid reuse); watched statuses stay until claimed (the kernel would
  keep a zombie just as long).
* A status that libev reaped but whose watcher the loop has not dispatched yet
  is read from the watcher itself (``_harvest``) before ECHILD is believed; in
  another OS thread, ``_sync_with_main`` lets the main loop dispatch first.
* When a real ``waitpid`` collects a watched pid first, its watcher is stopped.

Blocking ``waitpid(pid, 0)`` in the main thread waits on the pid's watcher; in
other OS threads (no child watchers there: libev watches children on the
default loop only, and loops are not thread-safe) it waits on a pidfd where the
platform has one (Linux >= 5.3), else polls with ``WNOHANG`` and cooperative
sleeps from 1 ms up to 50 ms.  Other pids (-1, process groups) and options
(``WUNTRACED``...) poll the same way.  Every wait re-polls at least every
``_RECHECK`` seconds, so a status taken by someone else (an unpatched
``waitpid`` in another thread) ends the wait with ECHILD instead of a hang.

Known limits: while our watchers are active, code that calls the *original*
``waitpid`` (an unpatched ``Popen.poll`` bound at import, C code) may get ECHILD
for its own children; ``os.system`` may return -1 the same way.  A SIGCHLD
handler installed with ``signal.signal`` meanwhile takes SIGCHLD from libev:
the waits then see exits at their next re-poll (``_RECHECK``), not at once.

Rejected: pidfd everywhere (no reaping at all) -- then a child reaped by any
other child watcher (a user's ``loop.child``) loses its status; polling in the
main thread -- up to 50 ms late and busy while a child runs long.

``fork`` in the child: the hub re-creates its kernel state
(``greenpatch.hub.hub._reinit_after_fork``), thread pools forget their threads
(``threadpool._reset_pools_after_fork``), and ``_ChildReaper`` drops the parent's
watchers and statuses (``os.register_at_fork``, registered on first use).
"""

from __future__ import annotations

import os as _stdlib
import signal as _signal
import sys
from collections import OrderedDict
from time import monotonic
from typing import Any

from greenlet import getcurrent

from greenpatch.hub.event import Event
from greenpatch.hub.greenlet import spawn
from greenpatch.hub.hub import Hub, get_hub, get_hub_if_exists
from greenpatch.hub.io import wait_read, wait_write
from greenpatch.hub.watchers import ChildWatcher
from greenpatch.patcher.api import original
from greenpatch.patcher.green._fdio import read as read
from greenpatch.patcher.green._fdio import write as write

if hasattr(_stdlib, "readv"):
    from greenpatch.patcher.green._fdio import readv as readv
    from greenpatch.patcher.green._fdio import writev as writev
from greenpatch.patcher.green.signal import (
    _in_main_thread,
    deliver_as_cpython,
    run_python_handler,
)

__target__ = "os"
__implements__ = ["fork", "waitpid", "wait", "read", "write"]
if hasattr(_stdlib, "forkpty"):
    __implements__.append("forkpty")
if hasattr(_stdlib, "readv"):
    __implements__ += ["readv", "writev"]

# The originals, whatever was patched before this module was first imported
# (``subprocess`` imports it even when the ``os`` patch is off).
_real_fork: Any = original("os", "fork")
_real_forkpty: Any = getattr(_stdlib, "forkpty", None) and original("os", "forkpty")
_real_waitpid: Any = original("os", "waitpid")
_real_getsignal: Any = original("signal", "getsignal")
_real_signal: Any = original("signal", "signal")
_allocate_lock: Any = original("_thread", "allocate_lock")
_pidfd_open: Any = getattr(_stdlib, "pidfd_open", None)
WNOHANG = _stdlib.WNOHANG

#: Longest a wait goes without polling the kernel again (seconds).
_RECHECK = 0.5
_MIN_POLL = 0.001
_MAX_POLL = 0.05
#: Unclaimed statuses of pids we did not watch are dropped after this long.
_STRAY_TTL = 60.0
_MAX_STATUSES = 4096


class _Recheck(Exception):
    """Timeout marker of a pidfd wait slice."""


def _final(status: int) -> bool:
    """Whether a wait status ends the child (not a stop/continue report)."""
    return not (_stdlib.WIFSTOPPED(status) or _stdlib.WIFCONTINUED(status))


class _Watched:
    """One watched child: its libev watcher and an event set when it is reaped."""

    __slots__ = ("exited", "pid", "watcher")

    def __init__(self, pid: int, watcher: ChildWatcher) -> None:
        self.pid = pid
        self.watcher = watcher
        self.exited = Event()


class _ChildReaper:
    """The main hub's child watchers and the statuses libev reaped for us.

    The table is shared with other OS threads (guarded by a real lock, held
    for a few dict operations); watchers are only touched in the main thread.
    """

    def __init__(self) -> None:
        self._lock = _allocate_lock()
        self._statuses: OrderedDict[int, tuple[int, float, bool]] = OrderedDict()
        self._watched: dict[int, _Watched] = {}
        self._stray: ChildWatcher | None = None
        self._stray_seen = (0, 0)
        self._hub: Hub | None = None
        self._fork_hook = False
        self._sigchld_scheduled = False

    # -- the table ---------------------------------------------------------------
    def _record(self, pid: int, status: int, watched: bool) -> None:
        now = monotonic()
        with self._lock:
            self._statuses[pid] = (status, now, watched)
            self._statuses.move_to_end(pid)
            # Oldest first: drop expired strays, and anything beyond the cap.
            for old_pid, (_, when, was_watched) in list(self._statuses.items()):
                fresh = was_watched or now - when < _STRAY_TTL
                if fresh and len(self._statuses) <= _MAX_STATUSES:
                    break
                del self._statuses[old_pid]

    def take(self, pid: int) -> tuple[int, int] | None:
        """The status libev reaped for ``pid`` (> 0) or for any child (-1), once."""
        with self._lock:
            if pid > 0:
                entry = self._statuses.pop(pid, None)
                return None if entry is None else (pid, entry[0])
            if pid == -1 and self._statuses:
                found, entry = self._statuses.popitem(last=False)
                return found, entry[0]
        # pid 0 or < -1 (a process group): a dead pid has no group to match.
        return None

    @property
    def active(self) -> bool:
        return self._hub is not None

    def in_main(self) -> bool:
        return self._hub is not None and get_hub_if_exists() is self._hub

    # -- watchers (main thread only) ---------------------------------------------
    def watch(self, hub: Hub, pid: int, newborn: bool = False) -> _Watched:
        """Watch ``pid`` on ``hub`` (the main one); ``newborn``: a status on file is stale."""
        entry = self._watched.get(pid)
        if entry is not None:
            return entry
        if newborn:
            with self._lock:
                self._statuses.pop(pid, None)
        self._hub = hub
        self._install_fork_hook()
        # Process-wide: a child's status belongs to the process, not to this hub.
        watcher = hub.loop.child(pid, process_wide=True)
        watcher.ref = False
        entry = self._watched[pid] = _Watched(pid, watcher)
        watcher.start(self._on_exit, entry)
        if self._stray is None:
            self._stray = hub.loop.child(0, process_wide=True)
            self._stray.ref = False
            self._stray.start(self._on_stray)
        return entry

    def watching(self, pid: int) -> bool:
        return pid in self._watched

    def _on_exit(self, entry: _Watched) -> None:
        status = entry.watcher.rstatus
        if self._watched.get(entry.pid) is entry:
            del self._watched[entry.pid]
        self._record(entry.pid, status, watched=True)
        self._close(entry)
        self._reaped()

    def _on_stray(self) -> None:
        stray = self._stray
        if stray is None:
            return
        seen = (stray.rpid, stray.rstatus)
        if seen == self._stray_seen or not seen[0]:
            return
        self._stray_seen = seen
        pid, status = seen
        with self._lock:
            known = pid in self._statuses
        if not known and pid not in self._watched and _final(status):
            self._record(pid, status, watched=False)
        self._reaped()

    def _harvest(self) -> None:
        """Take statuses libev reaped whose watchers the loop has not dispatched yet.

        libev writes ``rpid``/``rstatus`` when it reaps, then queues the watcher;
        a greenlet resumed earlier in the same dispatch batch would otherwise see
        ECHILD before the status reaches the table.
        """
        for entry in list(self._watched.values()):
            if entry.watcher.rpid:
                self._on_exit(entry)
        self._on_stray()

    def forget(self, pid: int) -> None:
        """A real ``waitpid`` collected ``pid``: its watcher will never fire."""
        entry = self._watched.get(pid)
        if entry is None or self._hub is None:
            return
        if self.in_main():
            self._forget_in_main(entry)
        else:
            self._hub.loop.run_callback_threadsafe(self._forget_in_main, entry)

    def _forget_in_main(self, entry: _Watched) -> None:
        if self._watched.get(entry.pid) is entry:
            del self._watched[entry.pid]
            self._close(entry)
            # Its SIGCHLD may have gone to libev's handler, not to Python's.
            self._reaped()

    def _close(self, entry: _Watched) -> None:
        entry.watcher.close()
        entry.exited.set()
        if not self._watched and self._stray is not None:
            self._stray.close()
            self._stray = None
            # libev's last release puts back the SIGCHLD disposition of the time
            # the default loop was made; a handler set since then must win.
            handler = _real_getsignal(_signal.SIGCHLD)
            if handler is not None and handler != _signal.SIG_DFL:
                _real_signal(_signal.SIGCHLD, handler)

    def _reaped(self) -> None:
        # While libev owns SIGCHLD, a Python-level SIGCHLD handler never runs;
        # call it once per loop iteration in which we reaped something.
        if not self._sigchld_scheduled and callable(_real_getsignal(_signal.SIGCHLD)):
            self._sigchld_scheduled = True
            assert self._hub is not None
            self._hub.loop.run_callback(self._run_sigchld_handler)

    def _run_sigchld_handler(self) -> None:
        self._sigchld_scheduled = False
        handler = _real_getsignal(_signal.SIGCHLD)
        if not callable(handler):
            return
        if sys.version_info >= (3, 10):
            # As CPython's own C handler: the wake-up descriptor hears of it too.
            spawn(deliver_as_cpython, _signal.SIGCHLD)
        else:  # interrupt_main takes no signal number before 3.10
            spawn(run_python_handler, handler, _signal.SIGCHLD)

    # -- other threads -----------------------------------------------------------
    def sync_with_main(self) -> None:
        """From another OS thread: wait until the main loop has dispatched its child watchers."""
        hub = self._hub
        if hub is None or hub.loop.closed or getcurrent() is get_hub_if_exists():
            return  # nothing to sync with, or we are a hub and may not wait
        done = Event()
        hub.loop.run_callback_threadsafe(self._harvest_and_set, done)
        done.wait(_RECHECK)

    def _harvest_and_set(self, done: Event) -> None:
        self._harvest()
        done.set()

    # -- fork ----------------------------------------------------------------------
    def _install_fork_hook(self) -> None:
        if not self._fork_hook and hasattr(_stdlib, "register_at_fork"):
            _stdlib.register_at_fork(after_in_child=self._after_fork_in_child)
            self._fork_hook = True

    def _after_fork_in_child(self) -> None:
        # The parent's children are not ours: drop their watchers (which also
        # gives SIGCHLD back) and wake whoever waited, to find ECHILD.
        self._lock = _allocate_lock()
        self._statuses.clear()
        entries = list(self._watched.values())
        self._watched.clear()
        for entry in entries:
            self._close(entry)
        if self._stray is not None:
            self._stray.close()
            self._stray = None
        self._stray_seen = (0, 0)
        self._sigchld_scheduled = False


_reaper = _ChildReaper()


def _main_hub() -> Hub | None:
    """The calling thread's hub if it owns libev's default loop (the main thread)."""
    hub = get_hub_if_exists()
    if hub is None:
        if not _in_main_thread():
            return None
        hub = get_hub()
    return hub if hub.loop.default else None


# -- fork ---------------------------------------------------------------------------
def fork() -> int:
    """``os.fork``; in the parent (main thread) the child is watched from birth."""
    pid: int = _real_fork()
    if pid:
        hub = _main_hub()
        if hub is not None:
            _reaper.watch(hub, pid, newborn=True)
    return pid


def forkpty() -> tuple[int, int]:
    """``os.forkpty``, with the child watched like ``fork``'s."""
    assert _real_forkpty is not None
    pid, fd = _real_forkpty()
    if pid:
        hub = _main_hub()
        if hub is not None:
            _reaper.watch(hub, pid, newborn=True)
    return pid, fd


def watch_child(pid: int) -> None:
    """Watch a child made by other means (``subprocess``), from the main thread."""
    hub = _main_hub()
    if hub is not None:
        _reaper.watch(hub, pid, newborn=True)


# -- waiting --------------------------------------------------------------------------
def waitpid(pid: int, options: int) -> tuple[int, int]:
    """``os.waitpid``, cooperative, and aware of the statuses libev reaped for us."""
    if options & WNOHANG:
        return _poll(pid, options)
    delay = _MIN_POLL
    while True:
        result = _poll(pid, options)
        if result[0]:
            return result
        if pid > 0 and options == 0:
            wait_exited(pid, None, delay)
        else:
            get_hub().sleep(delay)
        delay = min(delay * 2, _MAX_POLL)


def wait() -> tuple[int, int]:
    """``os.wait``: ``waitpid(-1, 0)``."""
    return waitpid(-1, 0)


def _poll(pid: int, options: int) -> tuple[int, int]:
    """One non-blocking look: the table first, then the kernel."""
    found = _reaper.take(pid)
    if found is not None:
        return found
    try:
        rpid, status = _real_waitpid(pid, options | WNOHANG)
    except ChildProcessError:
        # Maybe libev reaped it an instant ago and has not told us yet.
        if _reaper.active:
            if _reaper.in_main():
                _reaper._harvest()
            else:
                _reaper.sync_with_main()
            found = _reaper.take(pid)
            if found is not None:
                return found
            if pid > 0:
                _reaper.forget(pid)  # collected behind our back: its watcher is useless
        raise
    if rpid and _final(status):
        _reaper.forget(rpid)
    return rpid, status


def wait_exited(pid: int, timeout: float | None, delay: float = _MIN_POLL) -> None:
    """Block until ``pid`` has probably exited, at most ``timeout`` (and ``_RECHECK``).

    Never collects the status: the caller polls afterwards.  ``delay`` is the
    sleep of the polling fallback (the caller backs it off).
    """
    limit = _RECHECK if timeout is None else max(0.0, min(timeout, _RECHECK))
    hub = get_hub()
    if hub.loop.default:
        _reaper.watch(hub, pid).exited.wait(limit)
        return
    fd = None
    if _pidfd_open is not None:
        try:
            fd = _pidfd_open(pid)
        except OSError:
            fd = None  # no such process (the caller's poll says why), or no pidfd
    if fd is None:
        hub.sleep(min(limit, delay))
        return
    try:
        wait_read(fd, limit, _Recheck())
    except _Recheck:
        pass
    finally:
        _stdlib.close(fd)


# -- non-blocking descriptors (gevent's nb_read/nb_write, not patched names) ----------
def make_nonblocking(fd: int) -> bool:
    """Set ``O_NONBLOCK`` on ``fd``; returns whether it was blocking before."""
    if _stdlib.get_blocking(fd):
        _stdlib.set_blocking(fd, False)
        return True
    return False


def nb_read(fd: int, n: int) -> bytes:
    """``os.read`` on a non-blocking ``fd``, waiting on the hub while it has no data."""
    while True:
        try:
            return _stdlib.read(fd, n)
        except BlockingIOError:
            pass
        wait_read(fd)


def nb_write(fd: int, data: bytes) -> int:
    """``os.write`` on a non-blocking ``fd``, waiting on the hub while it is full."""
    while True:
        try:
            return _stdlib.write(fd, data)
        except BlockingIOError:
            pass
        wait_write(fd)
