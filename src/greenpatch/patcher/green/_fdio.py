"""Cooperative ``os.read``/``os.write`` (and ``readv``/``writev``) on any descriptor.

Under ``patch_all()`` threads are greenlets of one OS thread, so a thread
blocked in ``os.read`` on a pipe, a FIFO, a terminal or a socket stops every
other thread -- including the one that would write what it waits for (a
``multiprocessing.Queue``'s feeder thread, a ``Connection`` over a
``multiprocessing.Pipe``).  The green calls here block the calling greenlet
only.

How, without touching the descriptor's mode
-------------------------------------------
``O_NONBLOCK`` belongs to the open file description, which other processes
share (a pipe end handed to a child, a terminal): switching it, even for one
call, can make *their* blocking reads fail with ``EAGAIN``.  So the descriptor
is never switched.  Instead each call asks ``poll()`` with a zero timeout
whether the descriptor is ready, and only then makes the system call, which
then returns at once: a readable descriptor's ``read`` returns what is there
(and a regular file is always "ready").  While it is not ready, the greenlet
waits on the hub; the wake-up says the descriptor is ready, so the call
follows without asking ``poll()`` again.  A descriptor the caller made
non-blocking itself is left to the real call, which raises
``BlockingIOError`` as the caller expects.

Writes first try without the ``poll()``, where the kernel can be told "do
not block" for one call: ``pwritev2`` with ``RWF_NOWAIT`` and the current
offset (-1) is ``write`` that fails with ``EAGAIN`` instead of blocking,
whatever ``O_NONBLOCK`` says (Linux; pipes and sockets since 5.x).  A write
that goes through costs one system call, as unpatched; one that would block,
or a descriptor the flag does not serve (a terminal, some file systems:
``EOPNOTSUPP``), takes the ``poll()`` path.  Reads do not: the call needs a
buffer of the requested size, which ``preadv2`` fills and ``bytes`` copies
again, and ``os.read(fd, 65536)`` measured slower that way than with the
``poll()`` (a zeroed 64 KiB buffer per call); for a few bytes, no faster.

Writes: a writable pipe or socket takes at least ``PIPE_BUF`` bytes without
blocking, not necessarily more, so larger writes to anything but a regular
file or block device go ``PIPE_BUF`` bytes at a time, each after a readiness
check, until all is written -- as a blocking ``write`` does (callers that
ignore the count of a blocking write lose nothing).

The window between ``poll`` and the call: another process (or OS thread)
reading the same description may take the data first, and the call then blocks
as the unpatched one would have.  Rejected: toggling ``O_NONBLOCK`` around the
call (the shared-description hazard above); ``preadv2(RWF_NOWAIT)`` (regular
files only on most kernels).

Calls made by the hub greenlet itself (a callback) are the real ones: the hub
cannot wait on itself.
"""

from __future__ import annotations

import errno
import fcntl as _fcntl
import os as _stdlib
import select as _select
import stat as _stat
from typing import Any

from greenlet import getcurrent

from greenpatch.hub.hub import get_hub_if_exists
from greenpatch.hub.io import READ, WRITE, wait_once
from greenpatch.patcher.api import original

_real_read: Any = original("os", "read")
_real_write: Any = original("os", "write")
_real_readv: Any = getattr(_stdlib, "readv", None) and original("os", "readv")
_real_writev: Any = getattr(_stdlib, "writev", None) and original("os", "writev")
_real_poll: Any = original("select", "poll")
# pwritev2 with RWF_NOWAIT (see the docstring); 0 where the platform has none.
_real_pwritev: Any = getattr(_stdlib, "pwritev", None)
_NOWAIT: int = getattr(_stdlib, "RWF_NOWAIT", 0) if _real_pwritev is not None else 0
#: What a RWF_NOWAIT write answers when it would block or cannot be made that
#: way (the flag or the offset refused): the poll() path decides then.
_NOWAIT_DECLINED = frozenset(
    {errno.EAGAIN, errno.EOPNOTSUPP, errno.EINVAL, errno.ESPIPE, errno.ENOSYS}
)
_F_GETFL = _fcntl.F_GETFL
_get_flags = _fcntl.fcntl
_fstat = _stdlib.fstat

POLLIN = _select.POLLIN
POLLOUT = _select.POLLOUT
#: The largest write a writable pipe takes whole without blocking.
PIPE_BUF: int = getattr(_select, "PIPE_BUF", 512)
#: Per direction, the access mode with which the call can never succeed (a
#: write to a pipe's read end fails with EBADF; its POLLOUT never comes).
_WRONG_MODE = {POLLIN: _stdlib.O_WRONLY, POLLOUT: _stdlib.O_RDONLY}


def _ready_now(fd: int, mask: int) -> bool:
    """Whether ``fd`` is ready for ``mask`` (or in error, hung up, closed) right now.

    A poll object per call: the C object refuses concurrent ``poll()`` calls
    from two OS threads, and creating one costs well under a microsecond.
    """
    poller = _real_poll()
    poller.register(fd, mask)
    return bool(poller.poll(0))


def _in_hub() -> bool:
    hub = get_hub_if_exists()
    return hub is not None and getcurrent() is hub


def until_ready(fd: int, mask: int) -> bool:
    """Wait cooperatively until ``fd`` is ready for ``mask``.

    Returns False when the caller should make the real call at once: the
    descriptor is non-blocking (the caller wants ``EAGAIN``) or open the other
    way only (the call fails at once, as unpatched), or this is the hub greenlet.
    """
    while not _ready_now(fd, mask):
        if _in_hub():
            return False
        flags = _get_flags(fd, _F_GETFL)  # a closed descriptor: poll said POLLNVAL
        if flags & _stdlib.O_NONBLOCK or flags & _stdlib.O_ACCMODE == _WRONG_MODE[mask]:
            return False
        if wait_once(fd, READ if mask == POLLIN else WRITE):
            return True  # woken by readiness: no second poll()
    return True


def read(fd: int, length: int, /) -> bytes:
    """``os.read`` that blocks only the calling greenlet."""
    # _ready_now inline: a read that finds data pays no Python call more.
    poller = _real_poll()
    poller.register(fd, POLLIN)
    if not poller.poll(0):
        until_ready(fd, POLLIN)
    data: bytes = _real_read(fd, length)
    return data


def readv(fd: int, buffers: Any, /) -> int:
    """``os.readv`` that blocks only the calling greenlet."""
    until_ready(fd, POLLIN)
    count: int = _real_readv(fd, buffers)
    return count


def _takes_any_size(fd: int) -> bool:
    """Whether a write of any size to ``fd`` never waits for a reader."""
    mode = _fstat(fd).st_mode
    return _stat.S_ISREG(mode) or _stat.S_ISBLK(mode)


def _write_now(fd: int, buffers: list[Any]) -> int:
    """Write what ``fd`` takes of ``buffers`` without blocking; -1 when the kernel
    would block or cannot be asked that way (then the caller polls)."""
    try:
        written: int = _real_pwritev(fd, buffers, -1, _NOWAIT)
    except OSError as exc:
        if exc.errno in _NOWAIT_DECLINED:
            return -1
        raise  # EPIPE, EBADF...: what the write itself raises
    return written


def write(fd: int, data: Any, /) -> int:
    """``os.write`` that blocks only the calling greenlet (all of ``data``, as a
    blocking write writes it, unless the descriptor is non-blocking)."""
    written: int
    if _NOWAIT:
        written = _write_now(fd, [data])
        if written >= 0:
            if type(data) is bytes and written == len(data):
                return written  # the common case: one system call, as unpatched
            return _write_rest(fd, data, written)
    if not until_ready(fd, POLLOUT):
        written = _real_write(fd, data)
        return written
    with memoryview(data) as view, view.cast("B") as octets:
        total = octets.nbytes
        if total <= PIPE_BUF or _takes_any_size(fd):
            written = _real_write(fd, octets)
            return written
        written = _real_write(fd, octets[:PIPE_BUF])
        return _write_rest(fd, octets, written)


def _write_rest(fd: int, data: Any, written: int) -> int:
    """Go on with a write of which ``written`` bytes went; returns the total written."""
    with memoryview(data) as view, view.cast("B") as octets:
        total = octets.nbytes
        if written < total and _takes_any_size(fd):
            # A regular file that a RWF_NOWAIT write filled in part (the rest
            # needed the disk): the rest in one blocking call, as unpatched.
            return written + int(_real_write(fd, octets[written:]))
        while written < total:
            if not until_ready(fd, POLLOUT):
                # Made non-blocking meanwhile (or the hub): as the real call.
                try:
                    written += _real_write(fd, octets[written:])
                except BlockingIOError:
                    pass
                return written
            written += _real_write(fd, octets[written : written + PIPE_BUF])
        return written


def writev(fd: int, buffers: Any, /) -> int:
    """``os.writev`` that blocks only the calling greenlet (everything, as ``write``)."""
    buffers = list(buffers)
    total = 0
    for buffer in buffers:
        with memoryview(buffer) as view:
            total += view.nbytes
    count: int
    if _NOWAIT:
        count = _write_now(fd, buffers)
        if count == total:
            return count
        if count >= 0:
            return _write_rest(fd, b"".join(buffers), count)
    if total <= PIPE_BUF:
        until_ready(fd, POLLOUT)
        count = _real_writev(fd, buffers)
        return count
    return write(fd, b"".join(buffers))
