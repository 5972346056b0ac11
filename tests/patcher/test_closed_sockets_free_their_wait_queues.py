"""A closed green socket's wait queues are freed at once, by reference counting.

A socket that waited keeps a wait queue per direction; the queue's libev
watcher points back at the queue (``cancel_fd_waits`` finds the queue through
it).  Closing the socket closed the queue but kept that back-reference: queue
and watcher stayed alive as a reference cycle until the cyclic GC ran.
mysql-connector-python's ``BugOra13435186::test_connection`` counts
``gc.get_objects()`` across 100 connect/close rounds and wants a flat line: it
saw 99 different counts under the patch, one in a plain run.
"""

from __future__ import annotations

from tests.patcher._interpreter import run_script

SCRIPT = """
import greenpatch
greenpatch.patch_all(warn_late=False)
import gc, socket, threading, time
from greenpatch.hub.io import IoWaitQueue

gc.disable()  # only reference counting frees anything from here on

def queues():
    return sum(type(item) is IoWaitQueue for item in gc.get_objects())

before = queues()
while_open = []
for _ in range(10):
    a, b = socket.socketpair()

    def send_later():
        time.sleep(0)  # green threads: the main one reaches recv and waits first
        b.sendall(b"x")

    sender = threading.Thread(target=send_later)
    sender.start()
    a.recv(1)  # waits on its read queue until the sender's turn
    while_open.append(queues() - before)
    sender.join()
    a.close()
    b.close()
# Two turns of the loop (a sleep polls): a queue whose last waiter was woken
# stops its watcher right before the next poll (Loop.before_poll), and the
# loop iteration that did so may still be the one this thread resumed in.
time.sleep(0.001)
time.sleep(0.001)
print(min(while_open), queues() - before)
"""


def test_closing_a_socket_that_waited_leaves_no_queue_behind() -> None:
    # At least the one read queue exists while the socket is open; none after.
    opened, after = run_script(SCRIPT).split()
    assert int(opened) >= 1
    assert int(after) == 0
