"""The green ``ssl`` twin: TLS on loopback in fresh patched interpreters.

Certificates come from ``trustme`` (a throwaway CA), made once per module in the
pytest process and handed to the scripts through ``TLS_DIR``.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from tests.patcher._interpreter import run_script

trustme = pytest.importorskip("trustme")

PRELUDE = """
import os, socket, ssl, sys, time
PATCHED = os.environ.get("PATCH", "1") == "1"
if PATCHED:
    import greenpatch
    greenpatch.patch_all()
    import greenpatch as gp
    import socket, ssl
    def start(fn, *args):
        return gp.spawn(fn, *args)
else:
    import threading
    def start(fn, *args):
        threading.Thread(target=fn, args=args, daemon=True).start()

TLS = os.environ["TLS_DIR"]
CA = os.path.join(TLS, "ca.pem")
SERVER_CTX = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
SERVER_CTX.load_cert_chain(os.path.join(TLS, "server.pem"))
CLIENT_CTX = ssl.create_default_context(cafile=CA)

def serve(handler, ctx=SERVER_CTX):
    \"\"\"A TLS server on loopback: each connection's handler runs on its own.\"\"\"
    listener = ctx.wrap_socket(socket.create_server(("127.0.0.1", 0)), server_side=True,
                               do_handshake_on_connect=False)
    def accept_loop():
        while True:
            conn, _ = listener.accept()
            start(handler, conn)
    start(accept_loop)
    return listener.getsockname()

def connect(address, hostname="localhost", ctx=CLIENT_CTX, timeout=None):
    return ctx.wrap_socket(socket.create_connection(address, timeout=timeout),
                           server_hostname=hostname)

def recv_exactly(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)
"""


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        str(directory / "server.pem")
    )
    trustme.CA().cert_pem.write_to_path(str(directory / "other-ca.pem"))
    return directory


def run(
    tls_dir: Path,
    code: str,
    patched: bool = True,
    argv: list[str] | None = None,
    header: str = "",
) -> str:
    env = dict(os.environ, TLS_DIR=str(tls_dir), PATCH="1" if patched else "0")
    script = textwrap.dedent(header) + PRELUDE + textwrap.dedent(code)
    return run_script(script, env=env, argv=argv)


def test_echo_between_patched_client_and_server_with_many_concurrent_clients(tls_dir):
    out = run(
        tls_dir,
        """
        ticks = []
        def ticker():
            while True:
                ticks.append(1)
                time.sleep(0.005)
        gp.spawn(ticker)
        def echo(conn):
            with conn:
                conn.do_handshake()
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return
                    time.sleep(0.1)               # a slow server: clients must overlap
                    conn.sendall(data)
        address = serve(echo)
        def client(i):
            with connect(address) as sock:
                assert isinstance(sock, ssl.SSLSocket) and isinstance(sock, socket.socket)
                assert type(sock) is ssl.SSLContext.sslsocket_class
                assert type(sock) is not greenpatch.original("ssl", "SSLSocket")
                assert repr(sock).startswith("<ssl.SSLSocket fd=")
                payload = b"%03d" % i * 20000
                sock.sendall(payload)
                assert recv_exactly(sock, len(payload)) == payload
                return sock.version()
        begin = time.monotonic()
        jobs = [gp.spawn(client, i) for i in range(40)]
        gp.joinall(jobs, raise_error=True)
        elapsed = time.monotonic() - begin
        # Each client waits for at least four 0.1 s server sleeps: 16 s one by one.
        assert elapsed < 4, elapsed
        assert len(ticks) > elapsed / 0.005 / 4, (len(ticks), elapsed)
        print(sorted({job.value for job in jobs}))
        """,
    )
    assert out.startswith("['TLSv1.")


TIMEOUT_CASES = """
results = {}
def record(case, fn):
    began = time.monotonic()
    try:
        value = fn()
    except Exception as exc:
        results[case] = [type(exc).__name__, str(exc).split("(_ssl.c")[0].strip(),
                         round(time.monotonic() - began, 1)]
    else:
        results[case] = ["ok", value]

def silent(conn):
    time.sleep(30)
def handshake_then_idle(conn):
    conn.do_handshake()
    time.sleep(30)
plain = socket.create_server(("127.0.0.1", 0))
def accept_plain():
    while True:
        conn, _ = plain.accept()
        start(silent, conn)
start(accept_plain)
silent_address = plain.getsockname()
idle_address = serve(handshake_then_idle)

record("handshake", lambda: connect(silent_address, timeout=0.3))
sock = connect(idle_address, timeout=0.3)
record("read", lambda: sock.recv(10))
record("write", lambda: sock.sendall(b"x" * (64 << 20)))
other = connect(idle_address, timeout=5)
other.settimeout(0.3)
record("unwrap", lambda: other.unwrap())
third = connect(idle_address)
third.setblocking(False)
record("nonblocking_read", lambda: third.recv(10))
record("nonblocking_write_ok", lambda: third.send(b"hello"))
raw = socket.create_connection(idle_address)
raw.setblocking(False)
record("handshake_on_connect_nonblocking",
       lambda: CLIENT_CTX.wrap_socket(raw, server_hostname="localhost"))
def nonblocking_handshake():
    import select
    sock = CLIENT_CTX.wrap_socket(socket.create_connection(idle_address),
                                  server_hostname="localhost", do_handshake_on_connect=False)
    sock.setblocking(False)
    wants = []
    while True:
        try:
            sock.do_handshake()
            # Unpatched, a fast server thread may answer within the first call.
            results["nonblocking_wants"] = sorted(set(wants))
            return sock.version() is not None
        except ssl.SSLWantReadError:
            wants.append("read")
            select.select([sock], [], [], 5)
        except ssl.SSLWantWriteError:
            wants.append("write")
            select.select([], [sock], [], 5)
record("nonblocking_handshake", nonblocking_handshake)
print(json.dumps(results, sort_keys=True))
"""


def test_timeouts_and_nonblocking_mode_are_the_stdlib_ones(tls_dir):
    code = "import json\n" + TIMEOUT_CASES
    patched = json.loads(run(tls_dir, code, patched=True))
    plain = json.loads(run(tls_dir, code, patched=False))
    # Same exception types and messages, word for word, patched or not ...
    wants = patched.pop("nonblocking_wants"), plain.pop("nonblocking_wants")
    assert {case: value[:2] for case, value in patched.items()} == {
        case: value[:2] for case, value in plain.items()
    }
    # A greenlet server cannot answer while the client's first attempt runs.
    assert wants[0] == ["read"] and set(wants[1]) <= {"read", "write"}, wants
    # ... after the same time (the stdlib's sendall restarts its timeout per send).
    for case in ("handshake", "read", "unwrap"):
        assert patched[case][2] == plain[case][2] == 0.3, (case, patched[case], plain[case])
    timeout = "TimeoutError" if sys.version_info >= (3, 10) else "timeout"
    assert patched["handshake"][0] == timeout
    assert patched["handshake"][1].endswith("The handshake operation timed out")
    assert patched["read"][:2] == [timeout, "The read operation timed out"]
    assert patched["write"][:2] == [timeout, "The write operation timed out"]
    assert patched["unwrap"][:2] == [timeout, "The read operation timed out"]
    assert patched["nonblocking_read"][0] == "SSLWantReadError"
    assert patched["nonblocking_write_ok"] == ["ok", 5]
    assert patched["handshake_on_connect_nonblocking"][0] == "ValueError"
    assert patched["nonblocking_handshake"] == ["ok", True]


def test_makefile_sendfile_and_unwrap(tls_dir, tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(os.urandom(300_000))
    out = run(
        tls_dir,
        f"""
        import hashlib
        BLOB = {str(blob)!r}
        SIZE = os.path.getsize(BLOB)
        def server(conn):
            conn.do_handshake()
            stream = conn.makefile("rwb")
            stream.write(stream.readline().upper())
            stream.flush()
            digest = hashlib.sha256(recv_exactly(conn, SIZE)).hexdigest()
            conn.sendall(digest.encode())
            stream.close()
            plain = conn.unwrap()                 # answers the client's close_notify
            plain.sendall(b"clear " + plain.recv(100))
            plain.close()
        address = serve(server)
        with connect(address, timeout=10) as sock:
            with sock.makefile("rwb") as stream:
                stream.write(b"hello over tls\\n")
                stream.flush()
                assert stream.readline() == b"HELLO OVER TLS\\n"
            with open(BLOB, "rb") as f:
                assert sock.sendfile(f) == SIZE       # the send() fallback under TLS
                assert f.tell() == SIZE
            with open(BLOB, "rb") as f:
                expected = hashlib.sha256(f.read()).hexdigest()
            assert recv_exactly(sock, 64).decode() == expected
            plain = sock.unwrap()
            assert plain is sock and sock._sslobj is None
            plain.sendall(b"text")
            assert recv_exactly(plain, 10) == b"clear text"
            try:
                sock.unwrap()
            except ValueError as exc:
                assert "No SSL wrapper" in str(exc)
        print("ok")
        """,
    )
    assert out == "ok"


def test_sni_and_hostname_verification_against_the_ca(tls_dir):
    out = run(
        tls_dir,
        """
        names = []
        sni_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        sni_ctx.load_cert_chain(os.path.join(TLS, "server.pem"))
        sni_ctx.sni_callback = lambda sslsock, name, ctx: names.append(name)
        def hello(conn):
            try:
                conn.do_handshake()
                conn.sendall(b"hi")
            except ssl.SSLError:
                pass
            finally:
                conn.close()
        address = serve(hello, sni_ctx)
        # requests/urllib3 style: SSLContext.wrap_socket(sock, server_hostname=...)
        with connect(address, hostname="localhost") as sock:
            assert recv_exactly(sock, 2) == b"hi"
            assert ("DNS", "localhost") in sock.getpeercert()["subjectAltName"]
            assert sock.server_hostname == "localhost"
        with connect(address, hostname="127.0.0.1") as sock:     # an IP SAN, no SNI
            assert recv_exactly(sock, 2) == b"hi"
        for hostname, ctx, reason in [
            ("wrong.example", CLIENT_CTX, "Hostname mismatch"),
            ("localhost", ssl.create_default_context(cafile=os.path.join(TLS, "other-ca.pem")),
             "unable to get local issuer certificate"),
        ]:
            try:
                connect(address, hostname=hostname, ctx=ctx)
            except ssl.SSLCertVerificationError as exc:
                assert reason in exc.verify_message, exc.verify_message
            else:
                raise AssertionError(hostname)
        try:
            CLIENT_CTX.wrap_socket(socket.create_connection(address))   # no server_hostname
        except ValueError as exc:
            assert "check_hostname requires server_hostname" in str(exc)
        assert names[:2] == ["localhost", None] and "wrong.example" in names, names
        print("ok")
        """,
    )
    assert out == "ok"


EARLY_MODULE = """
import ssl

class EarlyContext(ssl.SSLContext):
    \"\"\"Made from the original class, before patch_all(), as libraries do at import.\"\"\"

ORIGINAL_CLASS = ssl.SSLContext
BEFORE = EarlyContext(ssl.PROTOCOL_TLS_CLIENT)
PLAIN_BEFORE = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
"""


def test_contexts_made_before_patching_work_and_never_recurse(tls_dir, tmp_path):
    (tmp_path / "early_tls.py").write_text(EARLY_MODULE)
    header = f"""
        import sys, warnings
        sys.path.insert(0, {str(tmp_path)!r})
        import early_tls                  # ssl imported and subclassed before patching
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import greenpatch
            greenpatch.patch_all()
        assert any("ssl was imported before" in str(w.message) for w in caught)
        """
    out = run(
        tls_dir,
        """
        import early_tls
        assert ssl.SSLContext is early_tls.ORIGINAL_CLASS      # never replaced
        assert ssl.SSLContext is greenpatch.original("ssl", "SSLContext")
        assert ssl.SSLSocket is greenpatch.original("ssl", "SSLSocket")
        def hello(conn):
            with conn:
                conn.do_handshake()
                conn.sendall(b"hi")
        address = serve(hello)
        contexts = [
            early_tls.BEFORE,
            early_tls.PLAIN_BEFORE,
            early_tls.EarlyContext(ssl.PROTOCOL_TLS_CLIENT),
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
        ]
        for ctx in contexts:
            # The stdlib's own setters call super(SSLContext, SSLContext): they
            # recursed forever when ssl.SSLContext was rebound to a subclass.
            ctx.options |= ssl.OP_NO_COMPRESSION
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
            ctx.verify_flags |= ssl.VERIFY_X509_STRICT
            assert ctx.options & ssl.OP_NO_COMPRESSION
            assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
            ctx.load_verify_locations(CA)
            with ctx.wrap_socket(socket.create_connection(address),
                                 server_hostname="localhost") as sock:
                assert type(sock) is ssl.SSLContext.sslsocket_class, type(sock).__mro__
                assert recv_exactly(sock, 2) == b"hi"
        if hasattr(ssl, "wrap_socket"):            # removed in Python 3.12
            with ssl.wrap_socket(socket.create_connection(address), ca_certs=CA,
                                 cert_reqs=ssl.CERT_REQUIRED) as sock:
                assert type(sock) is ssl.SSLContext.sslsocket_class
                assert recv_exactly(sock, 2) == b"hi"
            print("ok legacy")
        else:
            print("ok")
        """,
        header=header,
    )
    assert out == ("ok legacy" if sys.version_info < (3, 12) else "ok")


def test_requests_over_https_cooperates_under_greenpatch_run(tls_dir, tmp_path):
    pytest.importorskip("requests")
    script = tmp_path / "fetch.py"
    script.write_text(
        PRELUDE
        + textwrap.dedent(
            """
            import requests
            assert greenpatch.is_patched("ssl")          # `greenpatch run` patched first
            def http(conn):
                with conn:
                    conn.do_handshake()
                    request = b""
                    while b"\\r\\n\\r\\n" not in request:
                        request += conn.recv(4096)
                    path = request.split()[1]
                    time.sleep(0.3)                   # a slow server
                    body = b"you asked for " + path
                    conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n"
                                 b"Connection: close\\r\\n\\r\\n%s" % (len(body), body))
            address = serve(http)
            session = requests.Session()
            session.trust_env = False                  # no proxy from the environment
            def fetch(i):
                url = f"https://127.0.0.1:{address[1]}/{i}"   # IP SAN; no resolver in the way
                return session.get(url, verify=CA, timeout=10).text
            begin = time.monotonic()
            jobs = [gp.spawn(fetch, i) for i in range(10)]
            gp.joinall(jobs, raise_error=True)
            elapsed = time.monotonic() - begin
            assert [job.value for job in jobs] == [f"you asked for /{i}" for i in range(10)]
            assert elapsed < 2, elapsed                # one after the other: 3 s
            print("ok")
            """
        )
    )
    out = run(
        tls_dir,
        "",
        argv=[sys.executable, "-W", "ignore", "-m", "greenpatch", "run", str(script)],
    )
    assert out == "ok"


SHUTDOWN_WHILE_BLOCKED = """
import threading
from greenpatch.hub.io import waiting_fds

def blocked_in_the_call(sock):
    # Patched, a thread is a greenlet: it is blocked once it waits on the hub.
    # Plain, the caller proves the thread is inside the C call by other means.
    if PATCHED:
        while sock.fileno() not in waiting_fds():
            time.sleep(0.001)

def tls_pair():
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []
    def accept():
        conn, _ = listener.accept()
        accepted.append(SERVER_CTX.wrap_socket(conn, server_side=True))
    server = threading.Thread(target=accept)
    server.start()
    client = connect(listener.getsockname(), timeout=None)
    server.join(30)
    listener.close()
    return client, accepted[0]

def outcome(call):
    try:
        return ["ok", repr(call())]
    except Exception as exc:
        return [type(exc).__name__]

results = {}

# A thread blocked in recv() while another shuts the socket down: end of stream.
client, peer = tls_pair()
got = []
reader = threading.Thread(target=lambda: got.append(outcome(lambda: client.recv(100))))
reader.start()
blocked_in_the_call(client)        # (plain: either order gives the same answer)
client.shutdown(socket.SHUT_RDWR)
reader.join(30)
results["recv"] = got[0] if got else "hung"
client.close(); peer.close()

# A thread blocked in sendall() (the peer stopped reading) while another shuts
# the socket down: the TLS write fails as TLS, never as a plain socket send.
client, peer = tls_pair()
got = []
blob = b"x" * (64 << 20)
writer = threading.Thread(target=lambda: got.append(outcome(lambda: client.sendall(blob))))
writer.start()
peer.recv(1)     # the writer's one SSL_write is under way, and can never finish
blocked_in_the_call(client)
client.shutdown(socket.SHUT_RDWR)
writer.join(30)
results["sendall"] = got[0] if got else "hung"
client.close(); peer.close()
print(json.dumps(results, sort_keys=True))
"""


def test_shutdown_from_another_thread_ends_a_blocked_tls_call_as_the_stdlib_does(tls_dir):
    code = "import json\n" + SHUTDOWN_WHILE_BLOCKED
    plain = json.loads(run(tls_dir, code, patched=False))
    patched = json.loads(run(tls_dir, code, patched=True))
    assert plain["recv"] == ["ok", "b''"]
    assert patched == plain
