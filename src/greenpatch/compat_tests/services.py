"""Services a suite needs, started by the harness and always stopped again.

Redis: a ``redis-server`` on a free loopback port, persistence off (a test run
must leave nothing on disk and not stall on a fork for RDB), with the DEBUG
command enabled (redis-py's tests use it), health-checked with PING before the
suite starts and stopped after it -- on success, failure, or Ctrl-C alike,
because ``running_services`` is a context manager.

``--service redis=redis://host:port`` uses an existing server instead (after the
same health check).  No server to be had raises ``ServiceUnavailable``: the
suite is then reported as not run, never as passed.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from greenpatch.compat_tests.manifest import ServiceSpec

__all__ = [
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
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C is ours to handle: we stop it in order
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not redis_ping(url, timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (work_dir / f"redis-{port}.log").read_text(errors="replace")[-800:]
                raise ServiceUnavailable(f"redis-server did not come up on port {port}:\n{tail}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@contextlib.contextmanager
def running_services(
    specs: tuple[ServiceSpec, ...] | list[ServiceSpec],
    given: dict[str, str],
    work_dir: Path,
) -> Iterator[dict[str, str]]:
    """Every service in ``specs`` for the duration of the block: name -> URL.

    ``given`` (from ``--service NAME=URL``) names existing servers to use instead.
    """
    urls: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for spec in specs:
            if spec.name in given:
                url = given[spec.name]
                if not redis_ping(url):
                    raise ServiceUnavailable(f"no Redis server answers PING at {url}")
                urls[spec.name] = url
            else:
                urls[spec.name] = stack.enter_context(start_redis(work_dir / spec.name))
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
