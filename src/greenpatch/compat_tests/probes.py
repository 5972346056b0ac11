"""Cooperation probes: does a client library really yield to the loop?

A library can pass its whole test suite under the patch and still block the hub:
a C extension that does its own I/O, an ``epoll`` object made before patching, a
lock that is not green.  A probe measures it directly.  ``N`` greenlets each make
ONE blocking call through the library against a local server that answers after
``D`` seconds.  If the library yields, the calls overlap and the whole batch takes
about ``D``; if it blocks, they run one after the other and take ``N * D``::

    factor = sum(latencies) / wall        # about N if cooperative, about 1 if not

A probe is *cooperative* when ``factor >= 0.8 * N``.  The ratio is a behavioural
yes/no with a wide margin, not a benchmark: scheduling noise moves it by a few
percent, blocking moves it by a factor of N.

A probe always runs in a subprocess of the suite's own Python, patched from the
start (``patch_all()`` before the library is imported), exactly as a user would::

    python -m greenpatch.compat_tests.probes --callable MOD:FN --concurrency 20 \\
        --delay 0.3 [--service redis=redis://127.0.0.1:6379/0] [--http] [--without FLAG]

``--without FLAG`` (repeatable) leaves that ``patch_all`` flag out, as the
suite's patched run did (``greenpatch compat run --without zmq``): the probe
measures the library as the tests ran it.

``--http`` starts the slow HTTP server (``_slow_http.py``) in a separate, plain
Python process: a server inside the measured hub would stall it with its own
sleeps.  The subprocess prints one JSON line; ``run_probe`` runs it and returns
that line as a dict, and turns every failure (crash, hang, bad output) into a
result with ``"error"`` set and ``"cooperative": False``.

Everything is loopback: the HTTP server binds 127.0.0.1, and the built-in probes
ignore proxy settings from the environment.

This module is imported *before* patching in the probe subprocess, so its
top-level imports are limited to what patching does not touch; client libraries
and ``subprocess`` are imported inside functions.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from time import monotonic
from typing import Any, Callable

__all__ = [
    "COOPERATIVE_RATIO",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_DELAY",
    "REDIS_PROBE",
    "REQUESTS_PROBE",
    "ProbeContext",
    "ProbeSetupError",
    "generic_probe",
    "load_callable",
    "main",
    "measure",
    "redis_probe",
    "requests_probe",
    "run_probe",
]

DEFAULT_CONCURRENCY = 20
DEFAULT_DELAY = 0.3
#: A probe is cooperative when its factor reaches this share of the concurrency.
COOPERATIVE_RATIO = 0.8
REQUESTS_PROBE = "greenpatch.compat_tests.probes:requests_probe"
REDIS_PROBE = "greenpatch.compat_tests.probes:redis_probe"
_NO_HTTP_PROBES = frozenset({REDIS_PROBE})
_SLOW_HTTP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_slow_http.py")
_STDERR_TAIL = 2000


class ProbeSetupError(RuntimeError):
    """The probe lacks what it needs (a server URL, a service), as opposed to a failed call."""


@dataclass
class ProbeContext:
    """What a probe callable gets: the server's delay and where to reach the servers."""

    delay: float
    http_url: str | None = None
    service_urls: dict[str, str] = field(default_factory=dict)


ProbeCallable = Callable[[ProbeContext], object]


# -- built-in probe callables ---------------------------------------------------------
def requests_probe(context: ProbeContext) -> None:
    """One ``GET`` with ``requests`` to the slow HTTP server (it answers after ``delay``)."""
    if not context.http_url:
        raise ProbeSetupError(
            "requests_probe needs the slow HTTP server: run the probe with --http"
        )
    # Imported here, after patch_all(); through importlib so no stubs are needed.
    requests: Any = importlib.import_module("requests")
    with requests.Session() as session:
        # Proxy variables of the environment must not send a loopback probe elsewhere.
        session.trust_env = False
        response = session.get(context.http_url, timeout=context.delay + 30)
        response.raise_for_status()


_redis_clients: dict[str, Any] = {}


def redis_probe(context: ProbeContext) -> None:
    """One ``BLPOP`` on a key that stays empty, with a server-side timeout of ``delay``.

    Redis >= 6 takes a float timeout, so the server itself waits exactly ``delay``
    and answers nil.  The client (and its connection pool) is shared between calls,
    as an application would share it.
    """
    url = context.service_urls.get("redis")
    if not url:
        raise ProbeSetupError(
            "redis_probe needs a Redis URL: run the probe with --service redis=URL"
        )
    client = _redis_clients.get(url)
    if client is None:
        redis: Any = importlib.import_module("redis")
        client = _redis_clients[url] = redis.Redis.from_url(url)
    client.blpop([f"greenpatch:probe:empty:{os.getpid()}"], timeout=context.delay)


def generic_probe(
    function: Callable[..., object],
    args: Sequence[object],
    kwargs: Mapping[str, object],
) -> ProbeCallable:
    """The probe a manifest configures without writing Python: one call of any
    function of the library, ``function(*args, **kwargs)``, where each string
    argument may name the slow server: ``"{http_url}"``, ``"{delay}"``, or a
    service's URL by its name (``"{redis}"``).

    Rejected: a shell command as the probe.  Under the patch it would measure
    greenpatch's green subprocess, not whether the library yields.
    """

    def fill(value: object, context: ProbeContext) -> object:
        if not isinstance(value, str):
            return value
        names = {"http_url": context.http_url or "", "delay": context.delay}
        return value.format_map({**context.service_urls, **names})

    def probe(context: ProbeContext) -> object:
        return function(
            *(fill(arg, context) for arg in args),
            **{name: fill(value, context) for name, value in kwargs.items()},
        )

    return probe


# -- inside the probe subprocess ------------------------------------------------------
def load_callable(spec: str) -> ProbeCallable:
    """Import ``"package.module:function"`` (the attribute may be dotted), or
    ``"/path/to/probe.py:function"`` (a file, as a manifest beside it names it)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"probe callable {spec!r}: expected 'package.module:function'")
    target: Any
    if module_name.endswith(".py"):
        where = importlib.util.spec_from_file_location(
            os.path.basename(module_name)[:-3], module_name
        )
        if where is None or where.loader is None:
            raise ImportError(f"probe callable {spec!r}: cannot load {module_name}")
        target = importlib.util.module_from_spec(where)
        where.loader.exec_module(target)
    else:
        target = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"probe callable {spec!r} is not callable: {target!r}")
    return target  # type: ignore[no-any-return]


def _result(
    concurrency: int,
    delay: float,
    latencies: Sequence[float] = (),
    wall: float = 0.0,
    error: str | None = None,
) -> dict[str, Any]:
    factor = sum(latencies) / wall if wall > 0 else 0.0
    return {
        "concurrency": concurrency,
        "delay": delay,
        "latencies": [round(latency, 4) for latency in latencies],
        "wall": round(wall, 4),
        "factor": round(factor, 3),
        "cooperative": error is None and factor >= COOPERATIVE_RATIO * concurrency,
        "error": error,
    }


def _describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def measure(
    probe: ProbeCallable, context: ProbeContext, concurrency: int, join_timeout: float
) -> dict[str, Any]:
    """Time ``concurrency`` greenlets making one call each; call it in a patched process."""
    from greenpatch.hub import joinall, spawn

    latencies: list[float] = []
    errors: list[str] = []

    def one_call() -> None:
        started = monotonic()
        try:
            probe(context)
        except Exception as exc:
            errors.append(_describe_error(exc))
            return
        latencies.append(monotonic() - started)

    started = monotonic()
    tasks = [spawn(one_call) for _ in range(concurrency)]
    finished = joinall(tasks, timeout=join_timeout)
    wall = monotonic() - started
    error = None
    if errors:
        error = f"{len(errors)} of {concurrency} calls failed; the first: {errors[0]}"
    elif len(finished) < concurrency:
        error = (
            f"{concurrency - len(finished)} of {concurrency} calls did not finish within "
            f"{join_timeout:g} s"
        )
    return _result(concurrency, context.delay, latencies, wall, error)


def _start_slow_http(delay: float) -> tuple[Any, str]:
    import subprocess

    # Run by path with this interpreter, unpatched: see _slow_http.py.
    server = subprocess.Popen(
        [sys.executable, _SLOW_HTTP, "--delay", repr(delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    line = server.stdout.readline().decode("ascii", "replace").split() if server.stdout else []
    if len(line) != 2 or line[0] != "port":
        _stop_slow_http(server)
        raise ProbeSetupError(f"the slow HTTP server did not start (it printed {line!r})")
    return server, f"http://127.0.0.1:{int(line[1])}/"


def _stop_slow_http(server: Any) -> None:
    if server.stdin:
        server.stdin.close()  # end of file on its stdin is its signal to exit
    try:
        server.wait(timeout=10)
    except Exception:
        server.kill()
        server.wait()


def _parse_service(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name or not url:
        raise argparse.ArgumentTypeError(f"expected NAME=URL, got {text!r}")
    return name, url


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m greenpatch.compat_tests.probes",
        description="Measure whether a client library yields to the greenpatch hub.",
    )
    parser.add_argument("--callable", required=True, help="the probe, as package.module:function")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--delay", type=float, default=DEFAULT_DELAY)
    parser.add_argument("--service", type=_parse_service, action="append", default=[])
    parser.add_argument("--http", action="store_true", help="start the slow HTTP server")
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="FLAG",
        help="leave this patch_all flag out (e.g. zmq); repeatable",
    )
    parser.add_argument(
        "--call",
        type=json.loads,
        metavar="JSON",
        help='{"args": [...], "kwargs": {...}}: call the callable with these, not with the context',
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The probe subprocess: patch, warm up, measure, print one JSON line."""
    args = _parser().parse_args(argv)
    # First, before the probe's module (and so the library) is imported.
    from greenpatch.patcher import patch_all

    try:
        patch_all(**dict.fromkeys(args.without, False))
    except TypeError as exc:  # an unknown flag: the message lists the known ones
        print(json.dumps(_result(args.concurrency, args.delay, error=str(exc))), flush=True)
        return 1
    server = None
    try:
        http_url = None
        if args.http:
            server, http_url = _start_slow_http(args.delay)
        context = ProbeContext(args.delay, http_url, dict(args.service))
        probe = load_callable(args.callable)
        if args.call is not None:
            probe = generic_probe(probe, args.call.get("args", []), args.call.get("kwargs", {}))
        try:
            probe(context)  # imports, connection set-up and caches do not count
        except ProbeSetupError:
            raise
        except Exception as exc:
            raise ProbeSetupError(f"the warm-up call failed: {_describe_error(exc)}") from exc
        join_timeout = 2 * args.concurrency * args.delay + 30
        result = measure(probe, context, args.concurrency, join_timeout)
    except Exception as exc:
        message = str(exc) if isinstance(exc, ProbeSetupError) else _describe_error(exc)
        result = _result(args.concurrency, args.delay, error=message)
    finally:
        if server is not None:
            _stop_slow_http(server)
    print(json.dumps(result), flush=True)
    return 0 if result["error"] is None else 1


# -- from the harness ---------------------------------------------------------------
def _parse_output(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and "factor" in value:
            return value
    return None


def _kill_group(process: Any) -> None:
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        process.kill()


def run_probe(
    python: str,
    callable: str,
    concurrency: int = DEFAULT_CONCURRENCY,
    delay: float = DEFAULT_DELAY,
    service_urls: dict[str, str] | None = None,
    timeout: float = 120.0,
    http: bool | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    call: Mapping[str, Any] | None = None,
    without: Sequence[str] = (),
) -> dict[str, Any]:
    """Run a probe in a subprocess of ``python`` and return its result.

    ``http=None`` starts the slow HTTP server for every probe but the built-in
    redis one (``context.http_url`` is then set); ``False`` never starts it.
    ``env`` adds variables (e.g. ``PYTHONPATH`` for a suite's own probe module) and
    ``cwd`` sets the working directory.  ``call`` ({"args": [...], "kwargs":
    {...}}) makes it the generic probe (``generic_probe``); ``without`` names
    ``patch_all`` flags the probe leaves out.  A probe that fails, crashes or outlives
    ``timeout`` gives a result with ``"error"`` set; this function does not raise.
    """
    import subprocess

    if concurrency < 1 or not delay > 0:
        raise ValueError(f"need concurrency >= 1 and delay > 0, got {concurrency}, {delay}")
    if http is None:
        # Every probe but the built-in non-HTTP ones gets the server: a user's
        # callable may need context.http_url, and an idle server costs nothing.
        http = callable not in _NO_HTTP_PROBES
    if os.sep in python:
        python = os.path.abspath(python)  # a relative path must not depend on ``cwd``
    command = [python, "-m", "greenpatch.compat_tests.probes", "--callable", callable]
    command += ["--concurrency", str(concurrency), "--delay", repr(delay)]
    for name, url in sorted((service_urls or {}).items()):
        command += ["--service", f"{name}={url}"]
    if http:
        command.append("--http")
    if call is not None:
        command += ["--call", json.dumps(dict(call))]
    for flag in without:
        command += ["--without", flag]
    environ = dict(os.environ, **(env or {}))
    try:
        # A session of its own, so that a timeout kills the HTTP server it started too.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environ,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        return _result(concurrency, delay, error=f"could not start {python!r}: {exc}")
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        try:
            stdout, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            # Something outside the process group still holds the pipes open.
            process.wait()
            stderr = "(lost: a process outside the probe's group kept its output open)"
        return _result(
            concurrency,
            delay,
            error=(
                f"the probe did not finish within {timeout:g} s and was killed: a call that "
                "never returns, or a library that blocks the hub for good. "
                f"stderr: {stderr[-_STDERR_TAIL:].strip() or '(empty)'}"
            ),
        )
    except BaseException:
        _kill_group(process)
        process.wait()
        raise
    result = _parse_output(stdout)
    if result is None:
        return _result(
            concurrency,
            delay,
            error=(
                f"the probe exited with code {process.returncode} without a result "
                f"(is greenpatch installed in {python}?). "
                f"stderr: {stderr[-_STDERR_TAIL:].strip() or '(empty)'}"
            ),
        )
    return result


if __name__ == "__main__":
    # Run the copy importable by name: the built-in probe callables are loaded by
    # that name, and must share ProbeSetupError (and the client cache) with main().
    from greenpatch.compat_tests import probes

    sys.exit(probes.main())
