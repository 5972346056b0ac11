"""A thread that loops on ``select``/``poll``/``epoll`` answers given without
waiting lets the other patched threads run now and then, as OS threads would.

urllib3's TLS-in-TLS test relays between two sockets with
``select.select(inputs, outputs, inputs)``: both are always writable, so every
call answered at once and never passed through the hub; the server the relay
talks to, in another patched thread, never ran and the test hung.
"""

from __future__ import annotations

import pytest

from tests.patcher._interpreter import run_script

SCRIPT = """
import signal
signal.alarm(30)  # a hang kills the process: the test fails instead of hanging
import greenpatch
greenpatch.patch_all()
import select, socket, threading

KIND = {kind!r}
ours, theirs = socket.socketpair()

def ready_now():
    # 'ours' is always writable: each call answers without waiting.
    if KIND == "select":
        readable, _w, _x = select.select([ours], [ours], [])
        return bool(readable)
    if KIND == "select0":
        readable, _w, _x = select.select([ours], [], [], 0)
        return bool(readable)
    if KIND == "poll":
        poller = POLLER
        return any(events & select.POLLIN for _fd, events in poller.poll())
    return any(events & select.EPOLLIN for _fd, events in POLLER.poll())

if KIND == "poll":
    POLLER = select.poll()
    POLLER.register(ours, select.POLLIN | select.POLLOUT)
elif KIND == "epoll":
    POLLER = select.epoll()
    POLLER.register(ours.fileno(), select.EPOLLIN | select.EPOLLOUT)

received = []
spins = [0]

def relay():
    # Spins until the peer's bytes arrive; only another thread sends them.
    while not ready_now():
        spins[0] += 1
    received.append(ours.recv(16))

def peer():
    theirs.sendall(b"ping")

relay_thread = threading.Thread(target=relay)
relay_thread.start()  # runs first, until it blocks: it never blocks
threading.Thread(target=peer).start()
relay_thread.join()
print(received[0].decode(), spins[0] > 0)
"""


@pytest.mark.parametrize("kind", ["select", "select0", "poll", "epoll"])
def test_a_loop_of_answers_without_waiting_lets_other_threads_run(kind: str) -> None:
    select = pytest.importorskip("select")
    if kind == "epoll" and not hasattr(select, "epoll"):
        pytest.skip("no epoll on this platform")
    assert run_script(SCRIPT.format(kind=kind)) == "ping True"
