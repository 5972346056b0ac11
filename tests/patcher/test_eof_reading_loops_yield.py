"""A thread that reads an ended stream again and again lets the other patched
threads run now and then, as OS threads would.

urllib3 1.26's test servers read requests with ``while True: b = sock.recv(n);
... if b.endswith(b"\\r\\n\\r\\n"): break``: once a client closed without a
request, ``recv`` answered b"" at once, for ever.  With OS threads that only
burns a core; with patched threads the spinning server (a daemon thread left
over from the previous test) never let the next test's main thread run.
"""

from __future__ import annotations

import pytest

from tests.patcher._interpreter import run_script

trustme = pytest.importorskip("trustme")

SCRIPT = """
import signal
signal.alarm(30)  # a hang kills the process: the test fails instead of hanging
import greenpatch
greenpatch.patch_all()
import socket, ssl, threading

TLS = {tls!r}
stop = False
reads = [0]

def ended_stream():
    ours, theirs = socket.socketpair()
    if not TLS:
        theirs.close()
        return ours
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain({cert!r})
    client_ctx = ssl.create_default_context(cafile={ca!r})
    def client():
        # Hands shaken, then gone without a word: the stdlib's TLS reads then
        # answer b"" (suppress_ragged_eofs).
        client_ctx.wrap_socket(theirs, server_hostname="localhost").close()
    threading.Thread(target=client).start()
    return server_ctx.wrap_socket(ours, server_side=True)

stream = ended_stream()

def spin():
    # Never waits: the stream has ended, every read answers at once.
    while not stop:
        assert stream.recv(10) == b""
        reads[0] += 1

spinner = threading.Thread(target=spin)
spinner.start()  # runs first, until it blocks: it never blocks
stop = True  # reached only when the spinner lets this thread run
spinner.join()
print("stopped", reads[0] > 0)
"""


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    ca = trustme.CA()
    folder = tmp_path_factory.mktemp("tls")
    cert, ca_file = folder / "server.pem", folder / "ca.pem"
    ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(str(cert))
    ca.cert_pem.write_to_path(str(ca_file))
    return str(cert), str(ca_file)


@pytest.mark.parametrize("tls", [False, True], ids=["socket", "tls"])
def test_a_loop_reading_an_ended_stream_lets_other_threads_run(
    tls: bool, tls_files: tuple[str, str]
) -> None:
    cert, ca = tls_files
    assert run_script(SCRIPT.format(tls=tls, cert=cert, ca=ca)) == "stopped True"
