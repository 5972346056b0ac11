"""The I/O hand-off: a greenlet that blocks while the hub dispatches a batch of
ready descriptors wakes the next waiter of the batch itself (``Hub.switch``).

What must hold whichever greenlet does the waking: every waiter is woken once
per readiness, in the batch's order, and a queue whose woken waiter does not
wait again has its watcher stopped before the loop polls.
"""

from __future__ import annotations

import socket as stdlib_socket
from collections.abc import Callable, Iterator
from typing import Any

import greenlet
import pytest

import greenpatch
from greenpatch.hub import get_hub
from greenpatch.hub.io import READ, IoWaitQueue, waiting_fds

WAIT = 10.0
N = 20


@pytest.fixture
def pairs() -> Iterator[list[tuple[stdlib_socket.socket, stdlib_socket.socket]]]:
    made = [stdlib_socket.socketpair() for _ in range(N)]
    yield made
    for a, b in made:
        a.close()
        b.close()


def _until(predicate: Callable[[], bool], what: str) -> None:
    with greenpatch.Timeout(WAIT, AssertionError(f"gave up waiting for {what}")):
        while not predicate():
            greenpatch.sleep(0.001)


class _HubEntries:
    """Counts the switches into the hub greenlet (greenlet.settrace)."""

    def __init__(self) -> None:
        self.count = 0
        self._hub = get_hub()
        self._previous: Any = None

    def _trace(self, event: str, args: Any) -> None:
        if event in ("switch", "throw") and args[1] is self._hub:
            self.count += 1
        if self._previous is not None:
            self._previous(event, args)

    def __enter__(self) -> _HubEntries:
        self._previous = greenlet.settrace(self._trace)
        return self

    def __exit__(self, *exc: object) -> None:
        greenlet.settrace(self._previous)


def test_a_batch_of_ready_descriptors_wakes_its_waiters_without_the_hub_between_them(
    pairs: list[tuple[stdlib_socket.socket, stdlib_socket.socket]],
) -> None:
    queues = [IoWaitQueue(a.fileno(), READ) for a, _ in pairs]
    release = greenpatch.Event()
    woken: list[tuple[int, int]] = []  # (waiter, hub entries when it woke)

    def waiter(index: int, entries: _HubEntries) -> None:
        queues[index].wait()
        woken.append((index, entries.count))
        release.wait()  # blocks while the batch is still being dispatched

    try:
        with _HubEntries() as entries:
            greenlets = [greenpatch.spawn(waiter, index, entries) for index in range(N)]
            _until(lambda: all(queue.waiting == 1 for queue in queues), "every waiter")
            for _, b in pairs:
                b.send(b"x")  # no yield: all N are ready when the hub next polls
            _until(lambda: len(woken) == N, "every waiter woken")
            release.set()
            greenpatch.joinall(greenlets, timeout=WAIT, raise_error=True)
        assert sorted(index for index, _ in woken) == list(range(N))
        first, last = woken[0][1], woken[-1][1]
        # Through the hub, each wake-up after the first would cost an entry
        # into it (N - 1 in all); handed off, none does.
        assert last - first <= 1, f"the hub ran {last - first} times between {N} wake-ups"
    finally:
        for queue in queues:
            queue.close()


@pytest.mark.parametrize("then", ["blocks_elsewhere", "ends"])
def test_a_queue_whose_woken_waiter_does_not_wait_again_stops_its_watcher(
    pairs: list[tuple[stdlib_socket.socket, stdlib_socket.socket]], then: str
) -> None:
    queues = [IoWaitQueue(a.fileno(), READ) for a, _ in pairs]
    release = greenpatch.Event()
    woken: list[int] = []

    def waiter(index: int) -> None:
        queues[index].wait()
        pairs[index][0].recv(1)  # readiness consumed: nothing would fire the watcher again
        woken.append(index)
        if then == "blocks_elsewhere":
            release.wait()

    try:
        greenlets = [greenpatch.spawn(waiter, index) for index in range(N)]
        _until(lambda: all(queue.waiting == 1 for queue in queues), "every waiter")
        for _, b in pairs:
            b.send(b"x")
        _until(lambda: len(woken) == N, "every waiter woken")
        # A watcher left active would stay so for good (keeping the loop alive
        # with nobody waiting); let the loop poll once more first.
        greenpatch.sleep(0.01)
        watched = set(waiting_fds())
        assert not watched & {a.fileno() for a, _ in pairs}
        assert not any(queue.active for queue in queues)
        release.set()
        greenpatch.joinall(greenlets, timeout=WAIT, raise_error=True)
    finally:
        for queue in queues:
            queue.close()


def test_waiters_that_wait_again_get_each_readiness_once_in_turn(
    pairs: list[tuple[stdlib_socket.socket, stdlib_socket.socket]],
) -> None:
    rounds = 5
    queues = [IoWaitQueue(a.fileno(), READ) for a, _ in pairs]
    received: list[list[bytes]] = [[] for _ in range(N)]

    def echo(index: int) -> None:
        a = pairs[index][0]
        for _ in range(rounds):
            queues[index].wait()
            data = a.recv(64)
            received[index].append(data)
            a.send(data)

    try:
        greenlets = [greenpatch.spawn(echo, index) for index in range(N)]
        _until(lambda: all(queue.waiting == 1 for queue in queues), "every echo waiting")
        for turn in range(rounds):
            for index, (_, b) in enumerate(pairs):
                b.send(b"%d:%d" % (index, turn))
            for index, (_, b) in enumerate(pairs):
                b.setblocking(False)
                _until(lambda b=b: _readable(b), f"the echo of {index}")
                assert b.recv(64) == b"%d:%d" % (index, turn)
        greenpatch.joinall(greenlets, timeout=WAIT, raise_error=True)
        expected = [[b"%d:%d" % (index, turn) for turn in range(rounds)] for index in range(N)]
        assert received == expected
        assert not any(queue.active for queue in queues)
    finally:
        for queue in queues:
            queue.close()


def _readable(sock: stdlib_socket.socket) -> bool:
    try:
        return bool(sock.recv(1, stdlib_socket.MSG_PEEK))
    except BlockingIOError:
        return False


def test_a_greenlet_first_in_line_at_the_next_entry_is_woken_by_the_hub_not_by_itself(
    pairs: list[tuple[stdlib_socket.socket, stdlib_socket.socket]],
) -> None:
    # One greenlet in line on two queues at once (as select does): woken by
    # the first, it blocks again still first in line on the second, which is
    # next in the batch.  It must be woken again, through the hub.
    (a1, b1), (a2, b2) = pairs[0], pairs[1]
    first, second = IoWaitQueue(a1.fileno(), READ), IoWaitQueue(a2.fileno(), READ)
    hub = get_hub()
    wakes: list[str] = []

    def both() -> None:
        token1, token2 = [greenlet.getcurrent()], [greenlet.getcurrent()]
        first._join(token1)
        second._join(token2)
        hub.switch()
        woken_by = [token is not None and token[0] is None for token in (token1, token2)]
        wakes.append("one" if woken_by.count(True) == 1 else f"not one: {woken_by}")
        # The other token is still in line, on the queue next in the batch.
        hub.switch()
        woken_by = [token[0] is None for token in (token1, token2)]
        wakes.append("both" if all(woken_by) else f"stray: {woken_by}")

    try:
        glet = greenpatch.spawn(both)
        _until(lambda: first.waiting == 1 and second.waiting == 1, "the waiter in both lines")
        b1.send(b"1")
        b2.send(b"2")
        glet.get(timeout=WAIT)
        assert wakes == ["one", "both"]
    finally:
        first.close()
        second.close()
