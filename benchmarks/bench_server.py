"""Server benchmarks: TCP echo and WSGI hello-world, greenpatch against its peers.

    .venv/bin/python benchmarks/bench_server.py                 # everything
    .venv/bin/python benchmarks/bench_server.py --only echo     # one workload
    .venv/bin/python benchmarks/bench_server.py --duration 10 --runs 3

Every server runs in its own subprocess (so one library's monkey business cannot
disturb another's figures), the load generator in another, and all of them in
one invocation so the machine's state is the same for all.  Ratios are printed
against gevent (> 1 means faster than gevent).

echo: ``bench_server_client.c`` (or ``.py``) keeps 50 connections, each sending
a 1 KiB message and waiting for it to come back, for ``--duration`` seconds;
the same client for every server.  Two reference peers show where the floor is:
``selectors``, a plain-Python loop with no greenlets (one ``select`` per batch,
one ``recv`` and one ``send`` per round trip), and ``c-epoll``, the same loop in
C (``bench_server_cserver.c``, built with ``cc``).  Runs are interleaved (run 1
of every server, then run 2 of every server...), so that a change in the
machine's load during the invocation falls on all of them alike.

wsgi: ``wrk`` (Debian package ``wrk``) against a hello-world application, with
keep-alive and with ``Connection: close``.
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
C_SERVER = HERE / "bench_server_cserver.c"

ECHO_IMPLS = ["greenpatch", "gevent", "eventlet", "asyncio", "uvloop", "selectors", "c-epoll"]
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


def build_c(source: Path, build_dir: str) -> str | None:
    """``source`` compiled into ``build_dir``; None without a compiler or on an error."""
    compiler = shutil.which("cc")
    if compiler is None:
        return None
    binary = os.path.join(build_dir, source.stem)
    built = subprocess.run(
        [compiler, "-O2", "-o", binary, str(source)], capture_output=True, check=False
    )
    if built.returncode != 0:
        print(f"({source.name} did not build)\n{built.stderr.decode()}")
        return None
    return binary


def echo_client(build_dir: str, python_only: bool) -> list[str]:
    """The C load generator when it compiles, else the Python one (same protocol)."""
    binary = None if python_only else build_c(C_CLIENT, build_dir)
    if binary is not None:
        return [binary]
    if not python_only:
        print("(using the Python echo client)")
    return [sys.executable, CLIENT]


def server_command(impl: str, kind: str) -> list[str]:
    """The command that serves ``impl`` (prints its port, serves until SIGTERM)."""
    return [sys.executable, SERVE, impl, kind]


def start_server(command: list[str], kind: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait()
        raise RuntimeError(f"{' '.join(command)} ({kind}) did not start")
    return proc, int(line)


def stop_server(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_echo(client: list[str], server: list[str], duration: float, clients: int) -> float:
    proc, port = start_server(server, "echo")
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
    proc, port = start_server(server_command(impl, "wsgi"), "wsgi")
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
    width = max(11, *(len(impl) for impl in medians))
    for impl, value in medians.items():
        line = f"  {impl:<{width}} {value:12.0f} {unit}"
        if ref:
            line += f"   x{value / ref:5.2f} vs gevent"
        runs = figures[impl]
        if len(runs) > 1:
            line += f"   (runs {min(runs):.0f}-{max(runs):.0f})"
        print(line)
    uvloop = medians.get("uvloop")
    if uvloop:
        for impl, value in medians.items():
            if impl.startswith("greenpatch"):
                print(f"  {impl} / uvloop: x{value / uvloop:.2f}")
    return medians


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=["echo", "wsgi", "wsgi-close"])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--json", help="also write the medians to this file")
    parser.add_argument(
        "--python-client", action="store_true", help="echo: use the Python load generator"
    )
    parser.add_argument(
        "--peers",
        nargs="*",
        choices=ECHO_IMPLS,
        help="echo: only these implementations (default: all)",
    )
    parser.add_argument(
        "--busy",
        type=int,
        default=0,
        metavar="N",
        help="keep N other processes spinning on the CPU while measuring (a machine with "
        "other work running, reproducibly)",
    )
    parser.add_argument(
        "--greenpatch-src",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="echo: also serve greenpatch from this source tree (a src/ directory put "
        "first on PYTHONPATH), as the peer greenpatch[LABEL]: before/after a change, "
        "interleaved in one invocation",
    )
    args = parser.parse_args()
    workloads = args.only or ["echo", "wsgi", "wsgi-close"]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} run(s), median")
    print(load_average("at start"))
    results: dict[str, dict[str, float]] = {}
    spinners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)
    ]
    if spinners:
        print(f"{len(spinners)} spinning process(es) share the CPUs with the servers")
    try:
        run_workloads(args, workloads, results)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(load_average("at end"))
    return 0


def run_workloads(
    args: argparse.Namespace, workloads: list[str], results: dict[str, dict[str, float]]
) -> None:
    if "echo" in workloads:
        build_dir = tempfile.mkdtemp(prefix="bench_server_")
        client = echo_client(build_dir, args.python_client)
        print(f"echo client: {'C (epoll)' if len(client) == 1 else 'Python (selectors)'}")
        servers: dict[str, list[str]] = {}
        for impl in args.peers if args.peers is not None else ECHO_IMPLS:
            if impl == "c-epoll":
                binary = build_c(C_SERVER, build_dir)
                if binary is None:
                    print("  (c-epoll: no C compiler: skipped)")
                else:
                    servers[impl] = [binary]
            elif available(impl):
                servers[impl] = server_command(impl, "echo")
            else:
                print(f"  ({impl} not installed: skipped)")
        for spec in args.greenpatch_src:
            label, _, source = spec.partition("=")
            command = server_command("greenpatch", "echo")
            servers[f"greenpatch[{label}]"] = ["env", f"PYTHONPATH={source}", *command]
        figures: dict[str, list[float]] = {impl: [] for impl in servers}
        for _ in range(args.runs):  # interleaved: each run of every server in turn
            for impl, command in servers.items():
                figures[impl].append(run_echo(client, command, args.duration, args.clients))
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
        figures = {impl: [] for impl in WSGI_IMPLS if available(impl.split("-")[0])}
        for _ in range(args.runs):  # interleaved, as echo
            for impl, runs in figures.items():
                runs.append(run_wrk(impl, args.duration, args.clients, close))
                time.sleep(0.5)  # let TIME_WAIT sockets of the last run settle
        title = "WSGI hello world, " + ("Connection: close" if close else "keep-alive")
        results[workload] = report(f"{title}, wrk -c{args.clients}", figures, "requests/s")


if __name__ == "__main__":
    sys.exit(main())
