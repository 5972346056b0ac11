"""Sockets made while ``socket.setdefaulttimeout`` is set wait on the hub.

The C socket took the default timeout at construction, and the green socket
left it there: its C ``accept``/``recv``/``send`` then polled for that long
themselves, holding the hub's thread.  urllib3's
``test_timeout_errors_cause_retries`` sets a default timeout of 1 s: its server
thread's ``accept`` held the hub for that second, the client never connected,
and the accept timed out.
"""

from __future__ import annotations

from tests.patcher._interpreter import run_script

SCRIPT = """
import greenpatch
greenpatch.patch_all()
import os, socket, threading, time

socket.setdefaulttimeout(30)
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
ticks = []

def peer():
    # Runs only while the main thread waits cooperatively.
    for _ in range(3):
        time.sleep(0.01)
        ticks.append(1)
    client = socket.create_connection(listener.getsockname())
    for _ in range(3):
        time.sleep(0.01)
        ticks.append(1)
    client.sendall(b"ping")
    client.close()

threading.Thread(target=peer).start()
conn, _ = listener.accept()
accepted_after = len(ticks)
data = conn.recv(10)
# The stdlib's view is unchanged: the default timeout, a non-blocking descriptor.
print(accepted_after, len(ticks), data.decode(), conn.gettimeout(), os.get_blocking(conn.fileno()))
"""


def test_accept_and_recv_under_a_default_timeout_let_other_threads_run() -> None:
    assert run_script(SCRIPT) == "3 6 ping 30.0 False"
