"""gunicorn with greenpatch's worker against gunicorn with gevent's, on the same app.

    .venv/bin/python benchmarks/bench_gunicorn.py
    .venv/bin/python benchmarks/bench_gunicorn.py --duration 10 --runs 3 --connections 100

Both run as ``python -m gunicorn -w 1 -k <worker> app:app`` (one worker: the
comparison is of one process's event loop, not of how many cores the machine
has), in one invocation so the machine's state is the same for both; runs
alternate between the two.  Two paths of one app:

- ``/``: hello world, the cost of the worker's request handling;
- ``/sleep``: ``time.sleep(0.01)`` before answering (the patched sleep in both),
  many requests waiting at once.

The load comes from ``wrk`` (Debian package ``wrk``) with keep-alive when it is
installed, else from a Python load generator (threads with keep-alive
connections; much slower than wrk, so its absolute figures say less).  Printed:
requests per second and the 99th percentile latency of each worker (median of
the runs), and greenpatch's ratio to gevent (req/s: > 1 is faster; p99: < 1 is
better).  gevent is a benchmark-only dependency (the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _harness import load_average  # this directory is sys.path[0]

WORKERS = {"greenpatch": "greenpatch.gunicorn.Worker", "gevent": "gevent"}

APP = """
import time


def app(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(0.01)
    body = b"Hello, World!\\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gunicorn_args(worker: str, port: int, connections: int) -> list[str]:
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "-w",
        "1",
        "-k",
        worker,
        "-b",
        f"127.0.0.1:{port}",
        "--worker-connections",
        str(max(1000, connections * 2)),
        "--keep-alive",
        "60",
        "--backlog",
        "2048",
        "--log-level",
        "warning",
    ]
    from gunicorn.config import KNOWN_SETTINGS

    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        args.append("--no-control-socket")  # gunicorn 25+: one per user otherwise
    return [*args, "app:app"]


def start(worker: str, appdir: str, connections: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        gunicorn_args(worker, port, connections),
        cwd=appdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise RuntimeError(f"gunicorn -k {worker} exited:\n{proc.stderr.read().decode()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                conn.close()
                return proc, port
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError(f"gunicorn -k {worker} did not answer within 60 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(url: str, duration: float, connections: int) -> tuple[float, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", url],
        capture_output=True,
        text=True,
        check=False,
    )
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out.stdout, re.MULTILINE)
    if rate is None or p99 is None:
        raise RuntimeError(f"wrk printed no figures for {url}:\n{out.stdout}\n{out.stderr}")
    errors = re.search(r"Socket errors:.*|Non-2xx.*", out.stdout)
    if errors:
        print(f"    ({url}: {errors.group(0).strip()})")
    return float(rate.group(1)), float(p99.group(1)) * _UNITS[p99.group(2)]


def run_python_load(
    host: str, port: int, path: str, duration: float, connections: int
) -> tuple[float, float]:
    """The fallback: ``connections`` threads, each with one keep-alive connection."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    end = time.monotonic() + duration

    def client(mine: list[float]) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            while time.monotonic() < end:
                t0 = time.perf_counter()
                conn.request("GET", path)
                conn.getresponse().read()
                mine.append(time.perf_counter() - t0)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(mine,)) for mine in latencies]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    every = sorted(x for mine in latencies for x in mine)
    p99 = every[min(len(every) - 1, int(len(every) * 0.99))] * 1e3 if every else float("nan")
    return len(every) / elapsed, p99


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per worker and path")
    parser.add_argument("--connections", type=int, default=50, help="concurrent connections")
    parser.add_argument("--python-load", action="store_true", help="do not use wrk")
    args = parser.parse_args()

    try:
        import gevent  # noqa: F401
        import gunicorn
    except ImportError as exc:
        print(f"needs gunicorn and gevent (pip install -e '.[bench]'): {exc}")
        return 2
    use_wrk = shutil.which("wrk") is not None and not args.python_load
    load = "wrk -t1 --latency" if use_wrk else "the Python load generator (wrk not found)"
    print(f"gunicorn {gunicorn.__version__}, -w 1, {args.connections} keep-alive connections,")
    print(f"{args.runs} x {args.duration:g} s per worker and path, load from {load}\n")
    print(load_average("at start"))

    paths = ["/", "/sleep"]
    rates: dict[tuple[str, str], list[float]] = {}
    p99s: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as appdir:
        Path(appdir, "app.py").write_text(APP)
        servers = {
            name: start(worker, appdir, args.connections) for name, worker in WORKERS.items()
        }
        try:
            for _ in range(args.runs):
                for path in paths:
                    for name, (_, port) in servers.items():
                        if use_wrk:
                            url = f"http://127.0.0.1:{port}{path}"
                            rate, p99 = run_wrk(url, args.duration, args.connections)
                        else:
                            rate, p99 = run_python_load(
                                "127.0.0.1", port, path, args.duration, args.connections
                            )
                        rates.setdefault((name, path), []).append(rate)
                        p99s.setdefault((name, path), []).append(p99)
        finally:
            for proc, _ in servers.values():
                stop(proc)

    print(f"{'path':<8} {'worker':<11} {'req/s':>10} {'p99 ms':>9}")
    for path in paths:
        for name in WORKERS:
            rate = statistics.median(rates[name, path])
            p99 = statistics.median(p99s[name, path])
            print(f"{path:<8} {name:<11} {rate:>10.0f} {p99:>9.2f}")
        ratio_rate = statistics.median(rates["greenpatch", path]) / statistics.median(
            rates["gevent", path]
        )
        ratio_p99 = statistics.median(p99s["greenpatch", path]) / statistics.median(
            p99s["gevent", path]
        )
        print(
            f"{path:<8} {'ratio':<11} {ratio_rate:>10.2f} {ratio_p99:>9.2f}   (greenpatch/gevent)"
        )
    print(load_average("at end"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
