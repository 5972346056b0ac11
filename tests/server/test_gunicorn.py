"""``gunicorn -k greenpatch.gunicorn.Worker``: real gunicorn processes, a small app.

Every test starts gunicorn in a new session (default signal dispositions, its
own process group, killed in the fixture's teardown whatever happened) bound to
127.0.0.1 port 0, and reads the port from gunicorn's log.  Nothing waits a fixed
time: the tests poll for a condition (the port answers, a pid changes, the
listener refuses) with a generous deadline.

The app parks requests on a "hold" server run by the test: a request to
``/hold`` connects to it and waits (on I/O, cooperatively) until the test
releases it.  The test therefore knows exactly which requests are in flight,
and the app counts them (``/stats``).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

gunicorn = pytest.importorskip("gunicorn")

DEADLINE = 30.0  # seconds for anything we wait for

APP = textwrap.dedent(
    '''
    """The app gunicorn serves in tests/server/test_gunicorn.py."""
    import json
    import os
    import socket
    import time

    import greenpatch

    HOLD_PORT = int(os.environ["GP_HOLD_PORT"])
    state = {"inflight": 0, "max_inflight": 0, "served": 0}


    def hold(tag):
        state["inflight"] += 1
        state["max_inflight"] = max(state["max_inflight"], state["inflight"])
        try:
            with socket.create_connection(("127.0.0.1", HOLD_PORT)) as sock:
                sock.sendall(tag.encode() + b"\\n")
                return sock.recv(1)        # until the test releases this request
        finally:
            state["inflight"] -= 1


    def app(environ, start_response):
        path = environ["PATH_INFO"]
        query = environ.get("QUERY_STRING", "")
        if path == "/hold":
            hold(query)
            body = {"held": query}
        elif path == "/wait-io":
            # Waits on I/O (a recv nobody answers) for `query` seconds.
            a, b = socket.socketpair()
            a.settimeout(float(query))
            try:
                a.recv(1)
            except socket.timeout:
                pass
            finally:
                a.close()
                b.close()
            body = {"waited": float(query)}
        elif path == "/block":
            # Blocks the whole process: the heartbeat must stop too.
            greenpatch.original("time", "sleep")(float(query))
            body = {"blocked": float(query)}
        elif path == "/file" and query:
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            return environ["wsgi.file_wrapper"](open(query, "rb"))
        elif path == "/echo":
            body = {"echo": environ["wsgi.input"].read().decode()}
        elif path == "/stats":
            body = dict(state)
        elif path == "/reset":
            state["max_inflight"] = state["inflight"]
            body = dict(state)
        elif path == "/patched":
            body = {
                "socket": socket.socket is not greenpatch.original("socket", "socket"),
                "sleep": time.sleep is not greenpatch.original("time", "sleep"),
                "patched": sorted(greenpatch.patched()),
            }
        else:
            body = {}
        state["served"] += 1
        body["pid"] = os.getpid()
        body["remote_port"] = environ.get("REMOTE_PORT")
        data = json.dumps(body).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]
    '''
)


def _wait_for(condition: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``condition`` until it returns something true; fail after ``deadline`` s."""
    end = time.monotonic() + deadline
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


class HoldServer:
    """The test's side of ``/hold``: collects parked requests, releases them on demand."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.held: list[tuple[str, socket.socket]] = []
        self.arrived: list[str] = []
        self.released = 0
        self.released_when_arrived: dict[str, int] = {}
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            line = b""
            conn.settimeout(DEADLINE)
            try:
                while not line.endswith(b"\n"):
                    chunk = conn.recv(100)
                    if not chunk:
                        break
                    line += chunk
            except OSError:
                conn.close()
                continue
            tag = line.decode().strip()
            with self._lock:
                self.held.append((tag, conn))
                self.arrived.append(tag)
                self.released_when_arrived[tag] = self.released
                self._lock.notify_all()

    def wait_held(self, count: int) -> None:
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.held) >= count, DEADLINE):
                pytest.fail(f"{count} held requests expected, {len(self.held)} arrived")

    def release(self, count: int | None = None) -> None:
        with self._lock:
            n = len(self.held) if count is None else count
            batch, self.held = self.held[:n], self.held[n:]
            self.released += len(batch)
        for _, conn in batch:
            try:
                conn.sendall(b"x")
            finally:
                conn.close()

    def close(self) -> None:
        self.listener.close()
        self.release()


class Gunicorn:
    """One gunicorn master (and its workers) started for a test."""

    def __init__(
        self, workdir: Path, hold: HoldServer, args: list[str], context: Any = None
    ) -> None:
        self.context = context  # an ssl.SSLContext for a server started with --certfile
        self.log_path = workdir / "gunicorn.log"
        self._log = open(self.log_path, "wb")  # closed in stop()
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "-k",
            "greenpatch.gunicorn.Worker",
            "-b",
            "127.0.0.1:0",
            "--chdir",
            str(workdir),
            "--log-level",
            "debug",
            *_control_socket_args(workdir),
            *args,
            "app:app",
        ]
        env = dict(os.environ, GP_HOLD_PORT=str(hold.port), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group; default signal dispositions
            restore_signals=True,
        )
        match = _wait_for(self._listening, "gunicorn to listen")
        self.port = int(match.group(1))
        self.worker_pid = _wait_for(self._worker_pid, "a worker to answer")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _listening(self) -> re.Match[str] | None:
        if self.proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {self.proc.returncode}:\n{self.log()}")
        return re.search(r"Listening at: https?://127\.0\.0\.1:(\d+)", self.log())

    def _worker_pid(self) -> int | None:
        try:
            return int(self.get("/pid")["pid"])
        except OSError:
            return None

    def connection(self) -> http.client.HTTPConnection:
        if self.context is not None:
            return http.client.HTTPSConnection(
                "127.0.0.1", self.port, timeout=DEADLINE, context=self.context
            )
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=DEADLINE)

    def get(self, path: str) -> dict[str, Any]:
        conn = self.connection()
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            assert response.status == 200, response.status
            return json.loads(response.read())  # type: ignore[no-any-return]
        finally:
            conn.close()

    def refuses(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE).close()
        except ConnectionRefusedError:
            return True
        return False

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait(self) -> int:
        try:
            return self.proc.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            pytest.fail(f"gunicorn did not exit:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=DEADLINE)
        self._log.close()


def _control_socket_args(workdir: Path) -> list[str]:
    """gunicorn 25+ opens a control socket in ~/.gunicorn: keep tests apart."""
    from gunicorn.config import KNOWN_SETTINGS

    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        return ["--no-control-socket"]
    return []


class RequestThread(threading.Thread):
    """One request in a thread of its own; ``result`` is (status, headers, body) or an error."""

    def __init__(self, server: Gunicorn, path: str) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.path = path
        self.sent = threading.Event()
        self.result: Any = None

    def run(self) -> None:
        conn = self.server.connection()
        try:
            conn.request("GET", self.path)
            self.sent.set()
            response = conn.getresponse()
            self.result = (response.status, dict(response.getheaders()), response.read())
        except (OSError, http.client.HTTPException) as exc:
            self.result = exc
        finally:
            self.sent.set()
            conn.close()

    def outcome(self) -> Any:
        self.join(DEADLINE)
        assert not self.is_alive(), f"{self.path} did not finish"
        return self.result


@pytest.fixture
def hold() -> Iterator[HoldServer]:
    server = HoldServer()
    yield server
    server.close()


@pytest.fixture
def start_gunicorn(tmp_path: Path, hold: HoldServer) -> Iterator[Callable[..., Gunicorn]]:
    (tmp_path / "app.py").write_text(APP)
    started: list[Gunicorn] = []

    def start(*args: str, context: Any = None) -> Gunicorn:
        server = Gunicorn(tmp_path, hold, ["-w", "1", *args], context)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _accept_queue(port: int) -> int | None:
    """How many connections wait in the kernel's accept queue of 127.0.0.1:port."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == local and fields[3] == "0A":  # LISTEN
                return int(fields[4].split(":")[1], 16)
    return None


# -- tests -------------------------------------------------------------------------


def test_importing_the_worker_class_patches_nothing():
    # gunicorn's arbiter imports the worker class: it must stay unpatched.
    code = (
        "import greenpatch.gunicorn, greenpatch, socket;"
        "assert not greenpatch.patched(), greenpatch.patched();"
        "assert socket.socket is greenpatch.original('socket', 'socket')"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=DEADLINE)


def test_the_app_sees_patched_modules(start_gunicorn):
    server = start_gunicorn()
    answer = server.get("/patched")
    assert answer["socket"] is True
    assert answer["sleep"] is True
    assert {"socket", "time", "threading", "ssl", "signal"} <= set(answer["patched"])


def test_slow_requests_overlap(start_gunicorn, hold):
    server = start_gunicorn()
    requests = [RequestThread(server, f"/hold?{i}") for i in range(20)]
    for request in requests:
        request.start()
    # All 20 are parked at once in one worker: they are served concurrently
    # (served one after another, the second would never arrive).
    hold.wait_held(20)
    assert server.get("/stats")["inflight"] == 20
    hold.release()
    for request in requests:
        status, _, body = request.outcome()
        assert status == 200
        assert json.loads(body)["pid"] == server.worker_pid
    assert server.get("/stats")["max_inflight"] == 20


def test_keep_alive_serves_several_requests_on_one_connection(start_gunicorn):
    server = start_gunicorn("--keep-alive", "10")
    conn = server.connection()
    try:
        ports = set()
        sockets = set()
        for _ in range(5):
            conn.request("GET", "/stats")
            response = conn.getresponse()
            assert response.status == 200
            assert response.getheader("Connection", "").lower() != "close"
            ports.add(json.loads(response.read())["remote_port"])
            sockets.add(id(conn.sock))
        assert len(ports) == 1 and len(sockets) == 1
    finally:
        conn.close()


def test_io_wait_longer_than_timeout_keeps_the_worker(start_gunicorn):
    server = start_gunicorn("--timeout", "2")
    answer = server.get("/wait-io?5")  # 5 s on I/O, 2.5 timeouts
    assert answer["waited"] == 5.0
    assert answer["pid"] == server.worker_pid
    assert server.get("/pid")["pid"] == server.worker_pid
    assert "WORKER TIMEOUT" not in server.log()


def test_blocking_the_process_trips_the_timeout(start_gunicorn):
    # The control for the test above: a request that blocks the hub stops the
    # heartbeat, and the arbiter replaces the worker.
    server = start_gunicorn("--timeout", "2")
    blocked = RequestThread(server, "/block?8")
    blocked.start()
    _wait_for(lambda: "WORKER TIMEOUT" in server.log(), "the arbiter to see the timeout")
    _wait_for(lambda: server._worker_pid() not in (None, server.worker_pid), "a new worker")
    assert not isinstance(blocked.outcome(), tuple)  # the blocked request was cut off


def test_worker_connections_bounds_requests_in_flight(start_gunicorn, hold):
    server = start_gunicorn("--worker-connections", "2", "--keep-alive", "0")
    requests = [RequestThread(server, f"/hold?{i}") for i in range(3)]
    for request in requests[:2]:
        request.start()
    hold.wait_held(2)
    requests[2].start()
    requests[2].sent.wait(DEADLINE)
    # The third connection waits in the listener's backlog, not accepted.
    _wait_for(lambda: _accept_queue(server.port) == 1, "the third connection in the backlog")
    _a_new_connection_is_queued_too(server)
    hold.release(1)  # one slot frees: the third is accepted and served
    hold.wait_held(2)
    assert hold.released_when_arrived["2"] == 1
    hold.release()
    outcomes = [request.outcome() for request in requests]
    assert all(outcome[0] == 200 for outcome in outcomes), outcomes
    assert server.get("/stats")["max_inflight"] == 2


def _a_new_connection_is_queued_too(server: Gunicorn) -> None:
    """Clients beyond the pool are not refused: connect succeeds, the kernel queues them."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE):
        _wait_for(lambda: _accept_queue(server.port) == 2, "a second queued connection")


def test_hup_reloads_with_a_new_worker(start_gunicorn):
    server = start_gunicorn()
    old = server.worker_pid
    server.signal(signal.SIGHUP)
    new = _wait_for(lambda: (pid := server._worker_pid()) not in (None, old) and pid, "a new pid")
    assert new != old
    _wait_for(lambda: not _pid_alive(old), "the old worker to exit")
    assert server.proc.poll() is None


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def _held_request_during_stop(server: Gunicorn, hold: HoldServer, sig: int) -> RequestThread:
    request = RequestThread(server, "/hold?stop")
    request.start()
    hold.wait_held(1)
    server.signal(sig)
    # The worker got the signal once it closed its copy of the listener.
    _wait_for(server.refuses, "the listener to close")
    return request


def test_term_stops_gracefully(start_gunicorn, hold):
    server = start_gunicorn("--graceful-timeout", "60")
    request = _held_request_during_stop(server, hold, signal.SIGTERM)
    assert server.proc.poll() is None  # waiting for the request in flight
    hold.release()
    status, headers, body = request.outcome()
    assert status == 200
    assert json.loads(body)["held"] == "stop"
    assert headers.get("Connection", "").lower() == "close"
    assert server.wait() == 0
    assert "Worker graceful timeout" not in server.log()


def test_term_closes_idle_keep_alive_connections_at_once(start_gunicorn):
    server = start_gunicorn("--graceful-timeout", "60", "--keep-alive", "3600")
    conn = server.connection()
    try:
        conn.request("GET", "/stats")
        conn.getresponse().read()
        server.signal(signal.SIGTERM)
        assert server.wait() == 0  # not after the keep-alive hour
    finally:
        conn.close()


@pytest.mark.parametrize("sig", [signal.SIGQUIT, signal.SIGINT])
def test_quit_and_int_stop_quickly(start_gunicorn, hold, sig):
    # gunicorn's quick shutdown: requests in flight are not waited for.
    server = start_gunicorn("--graceful-timeout", "60")
    request = _held_request_during_stop(server, hold, sig)
    server.wait()
    outcome = request.outcome()
    assert not isinstance(outcome, tuple), outcome


def test_tls_with_certfile(start_gunicorn, tmp_path):
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    pem = str(tmp_path / "server.pem")
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(pem)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    server = start_gunicorn("--certfile", pem, "--keyfile", pem, context=context)
    conn = server.connection()
    try:
        for _ in range(2):  # keep-alive over TLS
            conn.request("GET", "/patched")
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["socket"] is True
    finally:
        conn.close()
    # A plain-HTTP client on the TLS port fails its handshake; the worker goes on.
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert plain.recv(100) == b""  # closed without an answer
        except ConnectionResetError:
            pass  # ... or reset, our request being unread
    assert server.get("/pid")["pid"] == server.worker_pid


def test_gunicorn_http_features(start_gunicorn, tmp_path):
    # What gunicorn users get from gunicorn's own handling: the access log,
    # --limit-request-line, Expect: 100-continue, wsgi.file_wrapper.
    (tmp_path / "data.bin").write_bytes(bytes(range(256)) * 1024)
    access = tmp_path / "access.log"
    server = start_gunicorn("--access-logfile", str(access), "--limit-request-line", "200")

    conn = server.connection()
    try:
        conn.request("GET", "/file?data.bin")
        response = conn.getresponse()
        assert response.status == 200
        assert response.read() == (tmp_path / "data.bin").read_bytes()

        conn.request("GET", "/" + "x" * 300)
        response = conn.getresponse()
        assert response.status == 414
        response.read()
    finally:
        conn.close()

    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as raw:
        raw.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            chunk = raw.recv(1)
            assert chunk, interim
            interim += chunk
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        raw.sendall(b"hello")
        reply = b""
        while chunk := raw.recv(65536):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 ")
        assert json.loads(reply.split(b"\r\n\r\n", 1)[1])["echo"] == "hello"

    _wait_for(lambda: '"GET /file?data.bin HTTP/1.1" 200' in access.read_text(), "access log")
