"""Services a suite needs, started by the harness and always stopped again.

Redis: a ``redis-server`` on a free loopback port, persistence off (a test run
must leave nothing on disk and not stall on a fork for RDB), with the DEBUG
command enabled (redis-py's tests use it), health-checked with PING before the
suite starts and stopped after it -- on success, failure, or Ctrl-C alike,
because ``running_services`` is a context manager.

``--service redis=redis://host:port`` uses an existing server instead (after the
same health check).  No server to be had raises ``ServiceUnavailable``: the
suite is then reported as not run, never as passed.

A server the harness started can die under the suite (OOM killer, a test that
sends SHUTDOWN, a crash): ``RunningServices.lost`` says so, and the runner polls
it beside its watchdog, so every test after the loss is not mistaken for a
regression (see ``runner.py``).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from greenpatch.compat_tests.manifest import ServiceSpec

__all__ = [
    "RunningServices",
    "ServiceUnavailable",
    "redis_ping",
    "running_services",
    "service_arguments",
    "start_redis",
]

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0


class ServiceUnavailable(RuntimeError):
    """A service the suite needs could not be had; the message says why."""


def redis_ping(url: str, timeout: float = 2.0) -> bool:
    """Whether a Redis server answers PING at ``url`` (redis://host:port/db)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 6379), timeout=timeout
        ) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_version(binary: str) -> tuple[int, ...]:
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"v=(\d+)\.(\d+)\.(\d+)", done.stdout)
    return tuple(int(part) for part in match.groups()) if match else (0, 0, 0)


@contextlib.contextmanager
def start_redis(work_dir: Path) -> Iterator[str]:
    """A private redis-server on loopback for the duration of the block; yields its URL."""
    with _redis_process(work_dir) as (url, _process):
        yield url


@contextlib.contextmanager
def _redis_process(work_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable(
            "no redis-server on PATH: install it (apt-get install redis-server) "
            "or pass --service redis=redis://HOST:PORT"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(work_dir), "--daemonize", "no"]
    if _redis_version(binary) >= (7, 0, 0):
        command += ["--enable-debug-command", "yes"]
    log = open(work_dir / f"redis-{port}.log", "wb")
    try:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C is ours to handle: we stop it in order
        )  # fmt: skip
    except BaseException:
        log.close()
        raise
    # Everything after the Popen is inside the try: a Ctrl-C at any point from
    # here on still stops the server (it is in its own session: the terminal's
    # SIGINT never reaches it, so nobody else would).
    try:
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + _START_TIMEOUT
        while not redis_ping(url, timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (work_dir / f"redis-{port}.log").read_text(errors="replace")[-800:]
                raise ServiceUnavailable(f"redis-server did not come up on port {port}:\n{tail}")
            time.sleep(0.05)
        yield url, process
    finally:
        _stop(process)
        log.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after a grace period -- and SIGKILL at once when a
    second Ctrl-C lands during the grace period: never leave the server behind."""
    try:
        process.terminate()
        process.wait(_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    except BaseException:
        process.kill()
        process.wait()
        raise


def describe_exit(code: int) -> str:
    """``-9`` -> "killed by SIGKILL", ``1`` -> "exited with status 1"."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class RunningServices(dict[str, str]):
    """Name -> URL of every service of a suite, and the servers the harness started."""

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def lost(self) -> dict[str, str]:
        """The started servers that are gone: name -> how they ended ("killed by SIGKILL").

        Cheap (one ``waitpid(WNOHANG)`` per server): the runner calls it on
        every turn of its watchdog loop.
        """
        gone: dict[str, str] = {}
        for name, process in self.started.items():
            code = process.poll()
            if code is not None:
                gone[name] = describe_exit(code)
        return gone

    def describe_loss(self) -> str | None:
        """One line naming every lost service, or None while all are up."""
        gone = self.lost()
        if not gone:
            return None
        return "; ".join(
            f"service {name} ({self[name]}, started by the harness) died: {how}"
            for name, how in gone.items()
        )


@contextlib.contextmanager
def running_services(
    specs: tuple[ServiceSpec, ...] | list[ServiceSpec],
    given: dict[str, str],
    work_dir: Path,
) -> Iterator[RunningServices]:
    """Every service in ``specs`` for the duration of the block: name -> URL.

    ``given`` (from ``--service NAME=URL``) names existing servers to use instead.
    """
    urls = RunningServices()
    with contextlib.ExitStack() as stack:
        for spec in specs:
            if spec.name in given:
                url = given[spec.name]
                if not redis_ping(url):
                    raise ServiceUnavailable(f"no Redis server answers PING at {url}")
                urls[spec.name] = url
            else:
                url, process = stack.enter_context(_redis_process(work_dir / spec.name))
                urls[spec.name] = url
                urls.started[spec.name] = process
        yield urls


def service_arguments(
    specs: tuple[ServiceSpec, ...] | list[ServiceSpec], urls: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """How the URLs reach the tests: pytest options and environment variables."""
    args: list[str] = []
    env: dict[str, str] = {}
    for spec in specs:
        if spec.option:
            args.append(f"{spec.option}={urls[spec.name]}")
        if spec.env:
            env[spec.env] = urls[spec.name]
    return args, env
