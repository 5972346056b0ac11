"""Server benchmarks: TCP echo and WSGI hello-world, greenpatch against its peers.

    .venv/bin/python benchmarks/bench_server.py                 # everything
    .venv/bin/python benchmarks/bench_server.py --only echo     # one workload
    .venv/bin/python benchmarks/bench_server.py --duration 10 --runs 3

Every server runs in its own subprocess (so one library's monkey business cannot
disturb another's figures), the load generator in another, and all of them in
one invocation so the machine's state is the same for all.  Ratios are printed
against gevent (> 1 means faster than gevent).

echo: ``bench_server_client.py`` keeps 50 connections, each sending a 1 KiB
message and waiting for it to come back, for ``--duration`` seconds; the same
client for every server.  wsgi: ``wrk`` (Debian package ``wrk``) against a
hello-world application, with keep-alive and with ``Connection: close``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import load_average  # this directory is sys.path[0]

HERE = Path(__file__).resolve().parent
SERVE = str(HERE / "bench_server_serve.py")
CLIENT = str(HERE / "bench_server_client.py")
C_CLIENT = HERE / "bench_server_client.c"

ECHO_IMPLS = ["greenpatch", "gevent", "eventlet", "asyncio", "uvloop"]
# gevent-nodelay: gevent's pywsgi with TCP_NODELAY on its sockets.  As shipped,
# pywsgi writes a response's head and body with separate sends, and Nagle's
# algorithm plus the client's delayed ACK then cost ~40 ms per keep-alive
# request; the variant shows gevent without that handicap, for a fair ratio.
WSGI_IMPLS = ["greenpatch", "gevent", "gevent-nodelay", "eventlet"]


def available(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def echo_client(build_dir: str, python_only: bool) -> list[str]:
    """The C load generator when it compiles, else the Python one (same protocol)."""
    compiler = shutil.which("cc")
    if compiler is not None and not python_only:
        binary = os.path.join(build_dir, "bench_server_client")
        built = subprocess.run(
            [compiler, "-O2", "-o", binary, str(C_CLIENT)], capture_output=True, check=False
        )
        if built.returncode == 0:
            return [binary]
        print(f"(the C client did not build; using the Python one)\n{built.stderr.decode()}")
    return [sys.executable, CLIENT]


def start_server(impl: str, kind: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, SERVE, impl, kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        raise RuntimeError(f"{impl} {kind} server did not start")
    return proc, int(line)


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_echo(client: list[str], impl: str, duration: float, clients: int) -> float:
    proc, port = start_server(impl, "echo")
    try:
        out = subprocess.run(
            [*client, str(port), str(clients), str(duration)],
            capture_output=True,
            text=True,
            check=True,
            timeout=duration + 60,
        )
    finally:
        stop_server(proc)
    return float(json.loads(out.stdout)["round_trips_per_s"])


def run_wrk(impl: str, duration: float, connections: int, close: bool) -> float:
    proc, port = start_server(impl, "wsgi")
    try:
        command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s"]
        if close:
            command += ["-H", "Connection: close"]
        out = subprocess.run(
            [*command, f"http://127.0.0.1:{port}/"],
            capture_output=True,
            text=True,
            check=False,  # wrk exits 1 on socket errors, which we report instead
            timeout=duration + 60,
        )
    finally:
        stop_server(proc)
    if "Non-2xx" in out.stdout or ("Socket errors" in out.stdout and not close):
        print(f"    note ({impl}): {out.stdout.strip().splitlines()[-3]}", file=sys.stderr)
    match = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no rate for {impl}:\n{out.stdout}\n{out.stderr}")
    return float(match.group(1))


def report(title: str, figures: dict[str, list[float]], unit: str) -> dict[str, float]:
    print(f"\n== {title}")
    medians = {impl: statistics.median(runs) for impl, runs in figures.items()}
    ref = medians.get("gevent")
    for impl, value in medians.items():
        line = f"  {impl:<11} {value:12.0f} {unit}"
        if ref:
            line += f"   x{value / ref:5.2f} vs gevent"
        print(line)
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=["echo", "wsgi", "wsgi-close"])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--json", help="also write the medians to this file")
    parser.add_argument(
        "--python-client", action="store_true", help="echo: use the Python load generator"
    )
    args = parser.parse_args()
    workloads = args.only or ["echo", "wsgi", "wsgi-close"]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} run(s), median")
    print(load_average("at start"))
    results: dict[str, dict[str, float]] = {}
    if "echo" in workloads:
        build_dir = tempfile.mkdtemp(prefix="bench_server_")
        client = echo_client(build_dir, args.python_client)
        print(f"echo client: {'C (epoll)' if len(client) == 1 else 'Python (selectors)'}")
        figures: dict[str, list[float]] = {}
        for impl in ECHO_IMPLS:
            if not available(impl):
                print(f"  ({impl} not installed: skipped)")
                continue
            figures[impl] = [
                run_echo(client, impl, args.duration, args.clients) for _ in range(args.runs)
            ]
        shutil.rmtree(build_dir, ignore_errors=True)
        results["echo"] = report(
            f"echo: 1 KiB round trips, {args.clients} connections", figures, "round trips/s"
        )
    for workload in ("wsgi", "wsgi-close"):
        if workload not in workloads:
            continue
        if shutil.which("wrk") is None:
            print("\n(wrk not found: apt-get install wrk) wsgi skipped")
            break
        close = workload == "wsgi-close"
        figures = {}
        for impl in WSGI_IMPLS:
            if not available(impl.split("-")[0]):
                continue
            figures[impl] = [
                run_wrk(impl, args.duration, args.clients, close) for _ in range(args.runs)
            ]
            time.sleep(0.5)  # let TIME_WAIT sockets of the last run settle
        title = "WSGI hello world, " + ("Connection: close" if close else "keep-alive")
        results[workload] = report(f"{title}, wrk -c{args.clients}", figures, "requests/s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(load_average("at end"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
