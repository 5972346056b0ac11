"""pyOpenSSL's ``Connection`` over a blocking green socket waits on the hub.

OpenSSL reads and writes the descriptor pyOpenSSL hands it, in C; a green
socket without a timeout keeps its descriptor blocking (as the stdlib does), so
the handshake blocked the hub's thread, and a server in a patched thread of the
same process never answered: urllib3 with pyOpenSSL injected hung on its first
HTTPS request to its own test server.  Each script here would hang without the
fix: a ``signal.alarm`` turns that into a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.patcher._interpreter import run_script

trustme = pytest.importorskip("trustme")
pytest.importorskip("OpenSSL.SSL")

SERVER = """
import signal
signal.alarm(30)  # a hang kills the process: the test fails instead of hanging
import os, sys
IMPORT_FIRST = {import_first!r}
if IMPORT_FIRST:
    import OpenSSL.SSL  # before patching: the class is made cooperative in place
import greenpatch
greenpatch.patch_all()
import socket, ssl, threading
import OpenSSL.SSL

SIZE = 4 * 1024 * 1024  # more than the socket buffers hold: writes must wait
server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
server_ctx.load_cert_chain({cert!r})
listener = socket.create_server(("127.0.0.1", 0))

def serve():
    conn, _ = listener.accept()
    with server_ctx.wrap_socket(conn, server_side=True) as tls:
        got = 0
        while got < SIZE:
            got += len(tls.recv(65536))
        tls.sendall(str(got).encode())

threading.Thread(target=serve, daemon=True).start()  # a greenlet of this thread
sock = socket.create_connection(listener.getsockname())
sock.settimeout({timeout!r})
conn = OpenSSL.SSL.Connection(OpenSSL.SSL.Context(OpenSSL.SSL.TLS_CLIENT_METHOD), sock)
conn.set_connect_state()
"""

BLOCKING_CALLS = """
conn.do_handshake()
sent = conn.sendall(b"x" * SIZE)
reply = conn.recv(100).decode()
conn.shutdown()
print(sent, reply, os.get_blocking(sock.fileno()))
"""


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> str:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("tls") / "server.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(path))
    return str(Path(path))


@pytest.mark.parametrize("import_first", [False, True], ids=["imported-after", "imported-before"])
def test_blocking_calls_of_a_connection_let_a_server_thread_answer(
    cert: str, import_first: bool
) -> None:
    script = SERVER.format(import_first=import_first, cert=cert, timeout=None) + BLOCKING_CALLS
    # Everything sent and answered; the descriptor is blocking again afterwards,
    # as the stdlib left it.
    assert run_script(script) == f"{4 * 1024 * 1024} {4 * 1024 * 1024} True"


def test_a_socket_with_a_timeout_keeps_pyopenssls_want_errors(cert: str) -> None:
    # Unpatched, a socket with a timeout has a non-blocking descriptor and
    # pyOpenSSL raises WantReadError where it would wait; callers (urllib3)
    # wait themselves.  The patch must not turn that into a wait.
    script = (
        SERVER.format(import_first=False, cert=cert, timeout=5.0)
        + """
import select
while True:
    try:
        conn.do_handshake()
        break
    except OpenSSL.SSL.WantReadError:
        select.select([sock], [], [])
try:
    conn.recv(100)  # nothing sent yet by the server: it is still reading
except OpenSSL.SSL.WantReadError:
    print("want-read")
"""
    )
    assert run_script(script) == "want-read"
