"""Services a suite needs, started by the harness and always stopped again.

Every kind of service (``redis``, ``postgresql``, ``mariadb``) has a starter --
a context manager that brings up a private server on a free loopback port and
yields ``(url, process)`` -- and a check that a real request succeeds at a URL.
``running_services`` starts what a manifest declares, runs its ``setup``
statements against the servers it started, and stops every server when the
block ends: on success, failure, Ctrl-C or SIGTERM alike (an ExitStack).

Redis: a ``redis-server``, persistence off (a test run must leave nothing on
disk and not stall on a fork for RDB), with the DEBUG command enabled (redis-py's
tests use it), health-checked with PING.  PostgreSQL and MariaDB live in
``_postgresql.py`` and ``_mariadb.py``; docs/services.md describes all three.

``--service NAME=URL`` uses an existing server instead (after the same check;
no setup statements are run against it).  No server to be had raises
``ServiceUnavailable``: the suite is then reported as not run, never as passed.

A server the harness started can die under the suite (OOM killer, a test that
sends SHUTDOWN, a crash): ``RunningServices.lost`` says so, and the runner polls
it beside its watchdog, so every test after the loss is not mistaken for a
regression (see ``runner.py``).
"""

from __future__ import annotations

import contextlib
import functools
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from greenpatch.compat_tests.manifest import ServiceSpec

__all__ = [
    "RunningServices",
    "ServiceKind",
    "ServiceUnavailable",
    "command_kind",
    "describe_exit",
    "redis_ping",
    "running_services",
    "service_arguments",
    "service_kind",
    "start_redis",
    "tcp_check",
    "url_fields",
]

_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 5.0

#: The process and what it yields: a starter is ``(work_dir) -> this``.
Started = tuple[str, subprocess.Popen[bytes]]


class ServiceUnavailable(RuntimeError):
    """A service the suite needs could not be had; the message says why."""


@dataclass(frozen=True)
class ServiceKind:
    """How the harness starts, checks and prepares one kind of server."""

    name: str
    #: "PostgreSQL", for messages.
    label: str
    #: Used when a URL names no port.
    default_port: int
    #: ``start(work_dir)``: a private server for the block, yielding (url, process).
    start: Callable[[Path], AbstractContextManager[Started]]
    #: ``check(url)``: None when a real request succeeds there, else why not.
    check: Callable[[str], str | None]
    #: ``setup(url, statements)``: run each in order; ServiceUnavailable on the first failure.
    setup: Callable[[str, Sequence[str]], None]


def service_kind(name: str) -> ServiceKind:
    """The kind named in a manifest's ``[services.NAME]`` (a server the harness
    knows; the suite's own servers are ``command_kind``)."""
    # Imported here: the database modules use this module's helpers.
    from greenpatch.compat_tests import _mariadb, _postgresql

    kinds = {
        "redis": ServiceKind("redis", "Redis", 6379, _redis_process, _redis_check, _redis_setup),
        "postgresql": ServiceKind(
            "postgresql",
            "PostgreSQL",
            5432,
            _postgresql.postgresql_process,
            _postgresql.check,
            _postgresql.run_setup,
        ),
        "mariadb": ServiceKind(
            "mariadb", "MariaDB", 3306, _mariadb.mariadb_process, _mariadb.check, _mariadb.run_setup
        ),
    }
    try:
        return kinds[name]
    except KeyError:
        raise ServiceUnavailable(
            f"unknown service {name!r}; the harness can start {', '.join(kinds)}"
        ) from None


# -- a server of the suite's own ------------------------------------------------


def tcp_check(url: str) -> str | None:
    """None when the URL's port accepts a TCP connection."""
    fields = url_fields(url)
    try:
        with socket.create_connection((fields["host"], int(fields["port"] or 0)), timeout=1.0):
            return None
    except (OSError, ValueError) as exc:
        return f"no connection: {exc}"


def command_kind(spec: ServiceSpec, python: str, cwd: Path) -> ServiceKind:
    """A server the suite brings (``[services.NAME] command = [...]``): run from
    its source tree with its Python -- a plain process, never patched: the
    suite's server is the test's peer, not what is tested."""

    @contextlib.contextmanager
    def start(work_dir: Path) -> Iterator[Started]:
        work_dir.mkdir(parents=True, exist_ok=True)
        log_path = work_dir / f"{spec.name}.log"

        def launch(port: int) -> subprocess.Popen[bytes]:
            fields = {"python": python, "port": str(port)}
            argv = [part.format_map(fields) for part in spec.command]
            env = {name: value.format_map(fields) for name, value in spec.command_env.items()}
            with open(log_path, "ab") as log:
                try:
                    return subprocess.Popen(
                        argv,
                        cwd=cwd,
                        env={**os.environ, **env},
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                except OSError as exc:
                    raise ServiceUnavailable(
                        f"the suite's server {spec.name} could not start ({argv[0]}: "
                        f"{exc.strerror or exc})"
                    ) from exc

        what = f"the suite's server {spec.name} ({' '.join(spec.command)})"
        with serving(launch, "tcp://127.0.0.1:{}".format, tcp_check, what, log_path) as started:
            yield started

    def no_setup(url: str, statements: Sequence[str]) -> None:
        raise ServiceUnavailable(f"{spec.name} is the suite's own server: it takes no setup")

    return ServiceKind(
        spec.name, f"{spec.name} (the suite's server)", 0, start, tcp_check, no_setup
    )


# -- Redis ---------------------------------------------------------------------


def redis_ping(url: str, timeout: float = 2.0) -> bool:
    """Whether a Redis server answers PING at ``url`` (redis://host:port/db)."""
    return _redis_command(url, "PING", timeout).startswith("+PONG")


def _redis_command(url: str, command: str, timeout: float = 2.0) -> str:
    """The first line of the answer to an inline command ("" when nobody answers)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 6379), timeout=timeout
        ) as sock:
            sock.sendall(command.encode() + b"\r\n")
            answer = b""
            while not answer.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
            return answer.decode(errors="replace").split("\r\n", 1)[0]
    except OSError:
        return ""


def _redis_check(url: str) -> str | None:
    return None if redis_ping(url) else "no answer to PING"


def _redis_setup(url: str, statements: Sequence[str]) -> None:
    for statement in statements:
        answer = _redis_command(url, statement, timeout=10.0)
        if not answer or answer.startswith("-"):
            raise ServiceUnavailable(
                f"setup statement failed on Redis at {url}: {statement!r}: "
                f"{answer[1:] if answer else 'no answer'}"
            )


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
def _redis_process(work_dir: Path) -> Iterator[Started]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable(
            "no redis-server on PATH: install it (apt-get install redis-server) "
            "or pass --service redis=redis://HOST:PORT"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    debug = ["--enable-debug-command", "yes"] if _redis_version(binary) >= (7, 0, 0) else []
    log_path = work_dir / "redis.log"
    with open(log_path, "wb") as log:

        def launch(port: int) -> subprocess.Popen[bytes]:
            command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            command += ["--appendonly", "no", "--dir", str(work_dir), "--daemonize", "no"]
            return subprocess.Popen(
                [*command, *debug], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

        with serving(launch, _redis_url, _redis_check, "redis-server", log_path) as started:
            yield started


def _redis_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


# -- helpers for every kind ----------------------------------------------------


def free_port() -> int:
    """A loopback port nobody listens on now (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(path: Path, size: int = 1200) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError as exc:
        return f"(log unreadable: {exc})"


def wait_until_ready(
    process: subprocess.Popen[bytes],
    check: Callable[[], str | None],
    what: str,
    log_path: Path,
    timeout: float,
) -> None:
    """Return once ``check()`` succeeds; ServiceUnavailable (with the log's end)
    when the server exits first or the timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        problem = check()
        if problem is None:
            return
        if process.poll() is not None:
            raise ServiceUnavailable(
                f"{what} {describe_exit(process.returncode)} before answering "
                f"(last check: {problem}); {log_path} ends:\n{log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise ServiceUnavailable(
                f"{what} did not answer within {timeout:.0f} s (last check: {problem}); "
                f"{log_path} ends:\n{log_tail(log_path)}"
            )
        time.sleep(0.1)


#: How many ports a server may try: another program can take the free port
#: between our look and the server's bind.
_PORT_TRIES = 3


@contextlib.contextmanager
def serving(
    launch: Callable[[int], subprocess.Popen[bytes]],
    url_for: Callable[[int], str],
    check: Callable[[str], str | None],
    what: str,
    log_path: Path,
    timeout: float = _START_TIMEOUT,
    first: signal.Signals = signal.SIGTERM,
    stop_timeout: float = _STOP_TIMEOUT,
) -> Iterator[Started]:
    """A server on a free loopback port for the block: ``launch(port)`` starts it
    (in its own session: Ctrl-C is ours to handle, we stop it in order), then
    ``check(url_for(port))`` must succeed; ``stop(process, first)`` after.  A
    server that exits because its port was taken in the meantime is started
    again on another."""
    for attempt in range(1, _PORT_TRIES + 1):
        port = free_port()
        mark = log_path.stat().st_size if log_path.exists() else 0
        url = url_for(port)
        process = launch(port)
        # From here on a Ctrl-C at any point still stops the server (the
        # terminal's SIGINT never reaches it, so nobody else would).
        try:
            wait_until_ready(process, functools.partial(check, url), what, log_path, timeout)
        except ServiceUnavailable:
            stop(process, first, stop_timeout)
            if (
                attempt < _PORT_TRIES
                and process.returncode is not None
                and _port_was_taken(log_path, mark)
            ):
                continue
            raise
        except BaseException:
            stop(process, first, stop_timeout)
            raise
        break
    try:
        yield url, process
    finally:
        stop(process, first, stop_timeout)


def _port_was_taken(log_path: Path, mark: int) -> bool:
    with contextlib.suppress(OSError), open(log_path, "rb") as log:
        log.seek(mark)
        return b"Address already in use" in log.read()
    return False


def stop(
    process: subprocess.Popen[bytes],
    first: signal.Signals = signal.SIGTERM,
    timeout: float = _STOP_TIMEOUT,
) -> None:
    """``first`` (SIGTERM; SIGINT is PostgreSQL's fast shutdown), then SIGKILL to
    the server's whole process group after a grace period -- and at once when a
    second Ctrl-C lands during the grace period: never leave a server behind."""
    try:
        if process.poll() is None:
            process.send_signal(first)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
    except BaseException:
        _kill_group(process)
        raise


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # The server leads its own session (start_new_session): its group holds the
    # backends it forked too, which must not outlive it.
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()


_stop = stop  # the name the harness's tests knew


def describe_exit(code: int) -> str:
    """``-9`` -> "killed by SIGKILL", ``1`` -> "exited with status 1"."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def masked(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


# -- servers that refuse to run as root ----------------------------------------


@dataclass(frozen=True)
class Account:
    """The unprivileged user a database server runs as when we are root."""

    name: str
    uid: int
    gid: int

    def popen_options(self) -> dict[str, Any]:
        # extra_groups=[]: not root's supplementary groups either.
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def server_account(preferred: str) -> Account | None:
    """None when we are not root (the server runs as us); else ``preferred`` (the
    distribution's own user: postgres, mysql) or ``nobody``.  PostgreSQL and
    MariaDB refuse to run as root, and CI runs as root."""
    if os.geteuid() != 0:
        return None
    for name in (preferred, "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return Account(name, entry.pw_uid, entry.pw_gid)
    raise ServiceUnavailable(
        f"running as root, and neither a {preferred!r} nor a 'nobody' user exists to run the "
        f"server as (it refuses root): create one (useradd --system {preferred}) or run "
        "greenpatch as an ordinary user"
    )


def _traversable(path: Path, account: Account) -> bool:
    """Whether ``account`` can reach ``path`` (search permission on every
    directory from / down, by the owner, group or other bits)."""
    groups = {account.gid, *(g.gr_gid for g in _groups_of(account.name))}
    for directory in [path, *path.parents]:
        try:
            info = directory.stat()
        except OSError:
            return False
        if info.st_uid == account.uid:
            bit = stat.S_IXUSR
        elif info.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return False
    return True


def _groups_of(name: str) -> list[grp.struct_group]:
    return [group for group in grp.getgrall() if name in group.gr_mem]


#: Unix socket paths are at most 107 bytes; the longest file we put in a
#: private directory (".s.PGSQL.65535.lock") needs this much room.
_SOCKET_ROOM = 24


@contextlib.contextmanager
def private_dir(work_dir: Path, account: Account | None, prefix: str) -> Iterator[Path]:
    """A new directory the server owns, for its data and socket; removed after.

    In the work dir when the server's user can reach it and a socket path there
    fits; else under the temporary directory (the work dir may be under /root,
    which ``postgres`` cannot enter)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    fits = len(str(work_dir.resolve())) + 1 + len(prefix) + 9 + _SOCKET_ROOM <= 107
    reachable = account is None or _traversable(work_dir.resolve(), account)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=work_dir if fits and reachable else None))
    try:
        if account is not None:
            os.chown(path, account.uid, account.gid)
            if not _traversable(path, account):
                raise ServiceUnavailable(
                    f"the server must run as {account.name!r} (it refuses root), who cannot "
                    f"reach {work_dir} nor {path}: make one of them searchable by that user, "
                    "or set TMPDIR to a directory it can reach"
                )
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- the suite's services ------------------------------------------------------


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
    python: str | None = None,
    source_root: Path | None = None,
) -> Iterator[RunningServices]:
    """Every service in ``specs`` for the duration of the block: name -> URL.

    ``given`` (from ``--service NAME=URL``) names existing servers to use
    instead: they are checked, never set up (their owner prepared them).
    ``python`` and ``source_root`` run the suite's own servers (``command``).
    """
    urls = RunningServices()
    with contextlib.ExitStack() as stack:
        for spec in specs:
            if spec.command:
                kind = command_kind(spec, python or sys.executable, source_root or Path.cwd())
            else:
                kind = service_kind(spec.name)
            if spec.name in given:
                url = given[spec.name]
                problem = kind.check(url)
                if problem is not None:
                    raise ServiceUnavailable(
                        f"no {kind.label} server answers at {masked(url)}: {problem}"
                    )
                urls[spec.name] = url
            else:
                url, process = stack.enter_context(kind.start(work_dir / spec.name))
                urls[spec.name] = url
                urls.started[spec.name] = process
                if spec.setup:
                    kind.setup(url, spec.setup)
        yield urls


def url_fields(url: str, default_port: int | None = None) -> dict[str, str]:
    """A service URL's parts, by the names ``variables`` templates use."""
    parts = urlsplit(url)
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ServiceUnavailable(f"bad service URL {masked(url)}: {exc}") from None
    return {
        "url": url,
        "host": parts.hostname or "",
        "port": "" if port is None else str(port),
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": unquote(parts.path.lstrip("/")),
    }


def service_arguments(
    specs: tuple[ServiceSpec, ...] | list[ServiceSpec], urls: dict[str, str]
) -> tuple[list[str], dict[str, str]]:
    """How the URLs reach the tests: pytest options and environment variables."""
    args: list[str] = []
    env: dict[str, str] = {}
    for spec in specs:
        url = urls[spec.name]
        if spec.option:
            args.append(f"{spec.option}={url}")
        if spec.env:
            env[spec.env] = url
        if spec.variables:
            default = None if spec.command else service_kind(spec.name).default_port
            fields = url_fields(url, default)
            for name, template in spec.variables.items():
                env[name] = template.format_map(fields)
    return args, env
