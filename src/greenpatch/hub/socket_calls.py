"""``CooperativeIO``: the blocking socket calls over the I/O core's wait queues.

The one implementation of ``recv``, ``send``, ``sendall``, ``accept``, ... over a
descriptor kept non-blocking in the kernel, for the patcher's green socket and
the servers' socket wrapper alike; see "The socket calls" in ``io.py`` for the
semantics (one deadline per call, ``sendall`` counted in bytes, the wait-first
guess after a short read, what closing does).
"""

from __future__ import annotations

from time import monotonic
from typing import TYPE_CHECKING, Any, Callable

from greenpatch.hub.hub import get_hub, get_hub_if_exists, hub_of_this_thread
from greenpatch.hub.io import (
    _DONTWAIT,
    _TIMED_OUT_MESSAGES,
    _UNSET,
    READ,
    WRITE,
    IoWaitQueue,
    SocketClosedError,
    SocketTimeout,
    cancel_fd_waits,
    yield_after_end_of_stream,
)

if TYPE_CHECKING:
    from greenpatch.hub.hub import Hub

__all__ = ["CooperativeIO"]


class CooperativeIO:
    """The blocking socket calls, made cooperative: each system call is made so
    that it cannot block (a non-blocking descriptor, or MSG_DONTWAIT added by
    the caller to a blocking one's calls), and a would-block waits on the hub.

    A subclass provides ``fileno()`` and the slots ``_io_timeout`` (the timeout
    the user set: None, 0.0 or seconds), ``_io_readers`` and ``_io_writers``
    (cached wait queues, initially None) and ``_io_short_read`` (see ``_io_recv``).
    TLS sockets add OpenSSL's want-errors to ``_io_would_block`` and name them
    in ``_io_wants_write`` / ``_io_wants_read``: OpenSSL says which way it must
    go (a read may need to write first, during a renegotiation, and a write to
    read).  The hub imports no ``ssl`` (it would weigh on every import of
    greenpatch), so the classes come from the subclasses.
    """

    # Empty slots at run time (a socket class has a layout of its own to mix
    # with); hidden from mypy, which would refuse the attributes the
    # subclasses' slots hold.
    if not TYPE_CHECKING:
        __slots__ = ()

    _io_timeout: float | None
    _io_readers: IoWaitQueue | None
    _io_writers: IoWaitQueue | None
    #: None: never guess (TLS, datagrams); else whether the last plain read came up short.
    _io_short_read: bool | None
    #: The exceptions that mean "try again when the descriptor is ready".
    _io_would_block: tuple[type[BaseException], ...] = (BlockingIOError,)

    def fileno(self) -> int:
        raise NotImplementedError

    #: The would-block exceptions that mean "wait to write" / "wait to read",
    #: whatever the call (TLS); others wait the call's own way.
    _io_wants_write: tuple[type[BaseException], ...] = ()
    _io_wants_read: tuple[type[BaseException], ...] = ()

    def _io_direction(self, exc: BaseException, events: int) -> int:
        """Which way to wait after ``exc``."""
        if isinstance(exc, self._io_wants_write):
            return WRITE
        if isinstance(exc, self._io_wants_read):
            return READ
        return events

    def _io_wait(
        self, events: int, deadline: float | None = None, message: str = "timed out"
    ) -> None:
        """Wait for ``events`` until ``deadline`` (monotonic; None: forever)."""
        hub = hub_of_this_thread() or get_hub()
        if events == READ:
            queue = self._io_readers
            if queue is None or queue.hub is not hub:
                queue = self._io_readers = self._io_new_queue(READ, queue, hub)
        else:
            queue = self._io_writers
            if queue is None or queue.hub is not hub:
                queue = self._io_writers = self._io_new_queue(WRITE, queue, hub)
        if deadline is None:
            queue.wait()
            return
        remaining = deadline - monotonic()
        if remaining <= 0:
            raise SocketTimeout(message)
        queue.wait(remaining, message)

    def _io_new_queue(self, events: int, old: IoWaitQueue | None, hub: Hub) -> IoWaitQueue:
        fd = self.fileno()
        if fd < 0:
            raise SocketClosedError("socket is closed")
        if old is not None and not old.waiting:
            # Used from another thread's hub before and idle there: let it go.
            # (One still in use there stays that thread's to close.)
            _close_in_its_thread(old)
        return IoWaitQueue(fd, events, hub)

    def _io_call(
        self,
        events: int,
        flags: int,
        call: Callable[..., Any],
        *args: Any,
        timeout: float | None = _UNSET,
        messages: tuple[str, str] = _TIMED_OUT_MESSAGES,
    ) -> Any:
        """``call(*args)``, retried after waiting for ``events`` while it would block.

        ``timeout`` defaults to the socket's; ``messages`` are the texts of the
        timeout for a wait to read and to write (TLS says which it was).
        """
        if timeout is _UNSET:
            timeout = self._io_timeout
        deadline = None
        while True:
            try:
                return call(*args)
            except self._io_would_block as exc:
                if timeout == 0.0 or (flags & _DONTWAIT and timeout is None):
                    raise
                way = self._io_direction(exc, events)
            if timeout is not None and deadline is None:
                deadline = monotonic() + timeout
            self._io_wait(way, deadline, messages[way != READ])

    def _io_recv(
        self,
        size: int,
        flags: int,
        call: Callable[..., Any],
        *args: Any,
        timeout: float | None = _UNSET,
    ) -> Any:
        """``call(*args)``: a read of up to ``size`` bytes, returning bytes or a count.

        After a short read (fewer bytes than asked for) the kernel's buffer is
        almost always empty, so the next plain read waits for readiness first
        instead of paying for a failed system call and its exception; readiness
        is level-triggered, so a wrong guess costs one loop iteration.  Only on
        stream sockets without TLS (``_io_short_read`` not None): OpenSSL may
        hold decrypted bytes epoll cannot see, and datagrams are short by nature.
        """
        if timeout is _UNSET:
            timeout = self._io_timeout
        deadline = None
        short = self._io_short_read
        if short and not flags and timeout != 0.0:
            if timeout is None:
                # A server's hot path (read, answer, read): the reader queue is
                # there and this thread's, so wait on it without _io_wait's call.
                queue = self._io_readers
                if queue is not None and queue.hub is hub_of_this_thread():
                    queue.wait()
                else:
                    self._io_wait(READ)
            else:
                deadline = monotonic() + timeout
                self._io_wait(READ, deadline)
        while True:
            try:
                result = call(*args)
            except self._io_would_block as exc:
                if timeout == 0.0 or (flags & _DONTWAIT and timeout is None):
                    raise
                way = self._io_direction(exc, READ)
            else:
                if short is not None:
                    count = result if type(result) is int else len(result)
                    self._io_short_read = 0 < count < size
                if not result and size:
                    yield_after_end_of_stream()  # which a loop may read again
                return result
            if timeout is not None and deadline is None:
                deadline = monotonic() + timeout
            self._io_wait(way, deadline)

    def _io_sendall(
        self,
        send: Callable[..., int],
        target: Any,
        data: Any,
        flags: int = 0,
        call_flags: int = 0,
    ) -> None:
        """``send(target, data, flags | call_flags)`` until all of ``data`` is sent;
        the timeout bounds the whole call, as in the stdlib.  ``flags`` are the
        caller's (its MSG_DONTWAIT means "never wait"); ``call_flags`` are added
        for the kernel only (the green socket's MSG_DONTWAIT over a blocking
        descriptor)."""
        send_flags = flags | call_flags
        try:
            sent = send(target, data, send_flags)
        except self._io_would_block:
            if self._io_timeout == 0.0 or (flags & _DONTWAIT and self._io_timeout is None):
                raise
            sent = 0
        if sent and type(data) is bytes and sent == len(data):
            return  # the common case: one call, no memoryview
        self._io_sendall_rest(send, target, data, sent, flags, send_flags)

    def _io_sendall_rest(
        self,
        send: Callable[..., int],
        target: Any,
        data: Any,
        sent: int,
        flags: int,
        send_flags: int,
    ) -> None:
        """The rest of a ``sendall`` whose first ``send`` took ``sent`` bytes
        (``flags``: the caller's; ``send_flags``: what the kernel gets)."""
        timeout = self._io_timeout
        deadline = None if timeout is None else monotonic() + timeout
        with memoryview(data) as view, view.cast("B") as octets:
            total = octets.nbytes
            while sent < total:
                try:
                    sent += send(target, octets[sent:], send_flags)
                except self._io_would_block as exc:
                    if timeout == 0.0 or (flags & _DONTWAIT and timeout is None):
                        raise
                    self._io_wait(self._io_direction(exc, WRITE), deadline)

    def _io_cancel_waits(self, error: BaseException | None = None) -> None:
        """Wake every greenlet waiting on this socket's descriptor (before it closes).

        This socket's queues are retired (in their own thread, if it is another:
        loops are not thread-safe); other waits on the descriptor in this
        thread's hub (``select``, ``wait_read``) end through ``cancel_fd_waits``.
        """
        for queue in (self._io_readers, self._io_writers):
            if queue is not None:
                _close_in_its_thread(queue, error)
        self._io_readers = self._io_writers = None
        fd = self.fileno()
        if fd >= 0:
            cancel_fd_waits(fd, error)


def _close_in_its_thread(queue: IoWaitQueue, error: BaseException | None = None) -> None:
    hub = queue.hub
    if hub is get_hub_if_exists():
        queue.close(error)
    elif not hub.loop.closed:
        hub.loop.run_callback_threadsafe(queue.close, error)
